import { CommanderError } from 'commander';
import { DatarootError } from '../formats/errors.js';
import { ioErrorCode, type ErrorCode } from '../formats/errorcodes.js';
import type { Ctx, Out } from '../commands/context.js';
import { emitError, terminalSafe } from '../commands/render.js';
import { buildProgram } from './program.js';
import { writeAllSync } from '../io/stdio.js';

/** Commander's error codes as catalog codes (commander.unknownOption -> USAGE_UNKNOWN_OPTION). */
const USAGE_CODES: Readonly<Record<string, ErrorCode>> = {
  'commander.unknownOption': 'USAGE_UNKNOWN_OPTION',
  'commander.unknownCommand': 'USAGE_UNKNOWN_COMMAND',
  'commander.missingArgument': 'USAGE_MISSING_ARGUMENT',
  'commander.optionMissingArgument': 'USAGE_OPTION_MISSING_ARGUMENT',
  'commander.missingMandatoryOptionValue': 'USAGE_MISSING_MANDATORY_OPTION_VALUE',
  'commander.conflictingOption': 'USAGE_CONFLICTING_OPTION',
  'commander.excessArguments': 'USAGE_EXCESS_ARGUMENTS',
  'commander.invalidArgument': 'USAGE_INVALID_ARGUMENT',
  'commander.error': 'USAGE_ERROR',
};

function usageCode(e: CommanderError): ErrorCode {
  return USAGE_CODES[e.code] ?? 'USAGE_ERROR';
}

/**
 * The only place that reads argv, decides the exit code and catches at top level.
 * Returns the exit code: 0 clean, 1 differences/problems found, 2 usage error or unreadable input.
 */
export async function main(
  argv: string[],
  io?: { stdout: Out; stderr: Out; env?: NodeJS.ProcessEnv; cwd?: string; stdin?: AsyncIterable<Uint8Array> & { isTTY?: boolean } },
): Promise<number> {
  const env = io?.env ?? process.env;
  const args = argv.slice(2);
  const json = args.includes('--json');
  const noColor = args.includes('--no-color') || (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '');
  // Every string written goes through one filter: control characters from evidence are escaped.
  const safe = (out: Out): Out => ({ write: (c) => out.write(typeof c === 'string' ? terminalSafe(c) : c) });
  const stdout: Out = safe(io?.stdout ?? { write: (c) => writeAllSync(1, c) });
  const ctx: Ctx = {
    stdout,
    stderr: safe(io?.stderr ?? { write: (c) => writeAllSync(2, c) }),
    color: !noColor && io === undefined && process.stdout.isTTY === true,
    stderrTTY: io === undefined && process.stderr.isTTY === true,
    stdoutTTY: io === undefined && process.stdout.isTTY === true,
    env,
    cwd: io?.cwd ?? process.cwd(),
    exitCode: 0,
  };
  // process.stdin sets the descriptor up when first touched: only for a command that reads it.
  if (io === undefined) Object.defineProperty(ctx, 'stdin', { get: () => process.stdin, enumerable: true });
  else if (io.stdin !== undefined) ctx.stdin = io.stdin;
  ctx.invoke = async (args: string[]) => {
    await (await buildProgram(ctx, args)).parseAsync(['node', 'dataroot', ...args]);
  };
  const program = await buildProgram(ctx, args);
  try {
    await program.parseAsync(argv);
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      if (e.code === 'commander.executeSubCommandAsync') return 2;
      const msg = e.message.replace(/^error: /, '').split('\n')[0] ?? e.message;
      emitError(ctx, new DatarootError(usageCode(e), msg), json);
      return 2;
    }
    // The reader went away (`dataroot … | head`): stop quietly, as other tools do.
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') return 0;
    if (e instanceof DatarootError) {
      emitError(ctx, e, json);
      return e.exitCode;
    }
    const err = e as NodeJS.ErrnoException;
    // A system call that failed on a path (an output directory that does not exist, a full disk):
    // a coded error naming the path, not an internal one.
    if (typeof err?.code === 'string' && /^E[A-Z0-9]+$/.test(err.code) && typeof err.syscall === 'string') {
      emitError(
        ctx,
        new DatarootError(
          ioErrorCode(err.code),
          `${err.syscall}${err.path !== undefined ? ` ${err.path}` : ''}: ${err.message.replace(/^E[A-Z0-9]+: /, '')}`,
          err.path !== undefined ? { file: err.path } : {},
        ),
        json,
      );
      return 2;
    }
    if (err instanceof RangeError && /call stack/.test(err.message)) {
      emitError(ctx, new DatarootError('INPUT_TOO_DEEP', 'the input is nested too deeply to process'), json);
      return 2;
    }
    emitError(ctx, new DatarootError('INTERNAL', `unexpected failure: ${err?.message ?? String(e)}`), json);
    if (env['DATAROOT_DEBUG']) ctx.stderr.write(`${err.stack ?? ''}\n`);
    return 2;
  }
}
