/**
 * Writing and replaying tar-split streams.
 *
 * Disassembly (what dockerd does when it registers a layer, tar/asm/disassemble.go): for each tar
 * entry, a segment with every raw byte before its data (previous padding, meta headers, header),
 * then a file entry with the name, size and CRC-64 of the data; at the end a segment with the last
 * padding and the zero blocks, and one with whatever follows them (possibly empty).
 *
 * Assembly (tar/asm/assemble.go): segments are written verbatim, each file entry with size > 0 is
 * replaced by that many bytes read from the layer's files, checked against its CRC-64.
 */
import { DatarootError } from '../errors.js';
import type { ErrorCode } from '../errorcodes.js';
import { Crc64 } from './crc64.js';
import { encodeEntry, type Entry, type FileEntry } from './entries.js';

/** Go's filepath.Clean of a slash-separated name (for tar-split's duplicate-path check). */
export function cleanPath(name: string): string {
  const abs = name.startsWith('/');
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!abs) out.push('..');
      continue;
    }
    out.push(part);
  }
  const s = out.join('/');
  if (abs) return `/${s}`;
  return s === '' ? '.' : s;
}

const latin1 = new TextDecoder('latin1');

/** Builds the NDJSON text of a tar-split stream entry by entry (tar-split's jsonPacker). */
export class TarSplitWriter {
  private position = 0;
  private readonly seen = new Set<string>();

  constructor(private readonly sink: (line: string) => void) {}

  segment(payload: Uint8Array | null): void {
    this.sink(encodeEntry({ type: 2, payload, position: this.position++ }));
  }

  /** A file entry; a second entry with the same cleaned name is refused, as the packer does. */
  file(name: Uint8Array, size: number, crc: Uint8Array | null): void {
    const key = cleanPath(latin1.decode(name));
    if (this.seen.has(key))
      throw new DatarootError('TAR_DUPLICATE_PATH', `the archive holds ${JSON.stringify(new TextDecoder().decode(name))} twice: dockerd refuses such a layer`);
    this.seen.add(key);
    this.sink(encodeEntry({ type: 1, name, size, crc, position: this.position++ }));
  }
}

/** A problem found while replaying a stream (verify lists them; save would fail on the first). */
export interface AssembleIssue {
  kind: 'missing' | 'short' | 'long' | 'crc' | 'escape' | 'unreadable';
  name: Uint8Array;
  message: string;
}

export interface FileSource {
  /** The content of a file of the layer, or undefined when it does not exist. */
  open(name: Uint8Array): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** The size on disk (to detect a file that grew), or undefined. */
  size?(name: Uint8Array): Promise<number | undefined>;
}

export interface AssembleOptions {
  /** Check each file's CRC-64 (default true). */
  crc?: boolean;
  /** Report problems and go on (the missing bytes replaced by zeros); without it the first one throws. */
  onIssue?: (i: AssembleIssue) => void;
}

const ZEROS = new Uint8Array(64 << 10);

function* zeros(n: number): Generator<Uint8Array> {
  for (let left = n; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
}

const utf8 = new TextDecoder();

const ISSUE_CODE = {
  missing: 'TARSPLIT_FILE_MISSING',
  short: 'TARSPLIT_FILE_SHORT',
  long: 'TARSPLIT_FILE_LONG',
  crc: 'TARSPLIT_FILE_CRC',
  escape: 'TARSPLIT_FILE_ESCAPE',
  unreadable: 'TARSPLIT_FILE_UNREADABLE',
} as const satisfies Record<AssembleIssue['kind'], ErrorCode>;

/** Replays entries into the tar bytes they describe. */
export async function* assemble(entries: AsyncIterable<Entry>, files: FileSource, opts: AssembleOptions = {}): AsyncGenerator<Uint8Array> {
  const checkCrc = opts.crc ?? true;
  const issue = (i: AssembleIssue): void => {
    if (opts.onIssue === undefined) throw new DatarootError(ISSUE_CODE[i.kind], i.message, { name: utf8.decode(i.name) });
    opts.onIssue(i);
  };
  for await (const e of entries) {
    if (e.type === 2) {
      if (e.payload !== null && e.payload.length > 0) yield e.payload;
      continue;
    }
    if (e.size === 0) continue;
    yield* fileBytes(e, files, checkCrc, issue);
  }
}

async function* fileBytes(e: FileEntry, files: FileSource, checkCrc: boolean, issue: (i: AssembleIssue) => void): AsyncGenerator<Uint8Array> {
  const shown = JSON.stringify(utf8.decode(e.name));
  let src: AsyncIterable<Uint8Array> | undefined;
  try {
    src = await files.open(e.name);
  } catch (err) {
    if (err instanceof DatarootError && err.code === 'TARSPLIT_PATH_ESCAPE') {
      issue({ kind: 'escape', name: e.name, message: `${shown} points outside the layer` });
    } else issue({ kind: 'unreadable', name: e.name, message: `${shown} cannot be read: ${(err as Error).message}` });
    yield* zeros(e.size);
    return;
  }
  if (src === undefined) {
    issue({ kind: 'missing', name: e.name, message: `${shown} (${e.size} bytes) is missing from the layer` });
    yield* zeros(e.size);
    return;
  }
  const crc = checkCrc ? new Crc64() : undefined;
  let left = e.size;
  for await (const chunk of src) {
    if (left === 0) {
      if (chunk.length > 0) {
        issue({ kind: 'long', name: e.name, message: `${shown} is longer than the ${e.size} bytes the layer recorded` });
        break;
      }
      continue;
    }
    const part = chunk.length <= left ? chunk : chunk.subarray(0, left);
    crc?.update(part);
    left -= part.length;
    yield part;
    if (chunk.length > part.length) {
      issue({ kind: 'long', name: e.name, message: `${shown} is longer than the ${e.size} bytes the layer recorded` });
      break;
    }
  }
  if (left > 0) {
    issue({ kind: 'short', name: e.name, message: `${shown} has ${e.size - left} of the ${e.size} bytes the layer recorded` });
    yield* zeros(left);
    return;
  }
  if (crc !== undefined && e.crc !== null) {
    const got = crc.digest();
    let same = got.length === e.crc.length;
    for (let i = 0; same && i < got.length; i++) if (got[i] !== e.crc[i]) same = false;
    if (!same) issue({ kind: 'crc', name: e.name, message: `${shown}: file integrity checksum failed (CRC-64 differs: the file was modified)` });
  }
}

/** What the caller does with each entry while a tar is disassembled (extract it, check it). */
export type EntryHandler = (e: import('../tar/reader.js').TarEntry, data: AsyncIterable<Uint8Array>) => Promise<void>;

/**
 * Reads a whole tar, writing its tar-split stream to `sink` the way tar-split 0.11 (dockerd 20.10)
 * does, and hands each entry with its data to `onEntry`. Data the handler does not read is read
 * here (the CRC-64 needs it). Returns the archive's end (zero blocks, trailing bytes, length).
 */
export async function disassemble(
  tr: import('../tar/reader.js').TarReader,
  sink: (line: string) => void,
  onEntry?: EntryHandler,
): Promise<import('../tar/reader.js').TarEnd> {
  const w = new TarSplitWriter(sink);
  for (;;) {
    const e = await tr.next();
    if (e === undefined) break;
    if (e.raw.length > 0) w.segment(e.raw);
    const crc = new Crc64();
    const it = tr.data();
    // No return(): a handler that stops early leaves the rest to the drain below (and the CRC).
    const tee: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const r = await it.next();
          if (r.done !== true) crc.update(r.value);
          return r;
        },
      }),
    };
    if (onEntry !== undefined) await onEntry(e, tee);
    for await (const c of it) crc.update(c);
    w.file(e.name, e.size, e.size > 0 ? crc.digest() : null);
  }
  const end = tr.end!;
  if (end.raw.length > 0) w.segment(end.raw);
  // tar-split reads the rest in 1 MiB chunks, one segment each, and the read at EOF adds an empty one.
  for (let o = 0; o < end.remainder.length; o += 1 << 20) w.segment(end.remainder.subarray(o, Math.min(end.remainder.length, o + (1 << 20))));
  w.segment(new Uint8Array());
  return end;
}
