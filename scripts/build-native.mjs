// Builds dataroot's native addon the way npm builds addons: `node-gyp rebuild` of binding.gyp
// into build/Release/dataroot_native.node. npm runs this as the package's install script (so
// `npm ci` and `npm install dataroot` build it), and `npm run build` runs it again.
//
// A failed build does not fail the install: every read command works without the addon. It is
// loud instead: the reason and the commands that will not work are printed, and kept in
// build/native-build.json, which `dataroot info` reports.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const report = join(root, 'build', 'native-build.json');
const NEEDS_ADDON = [
  'snapshot',
  'restore',
  'reset',
  'inject',
  'pack/edit --into-root',
  'container diff and verify --deep of overlay2 roots (opaque directories)',
  'export, mount and find of layers with xattrs (file capabilities, opaque directories)',
];

/** npm's own node-gyp (npm sets npm_config_node_gyp for scripts), else the one on PATH. */
function nodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm !== undefined && existsSync(fromNpm)) return [process.execPath, fromNpm];
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(bundled)) return [process.execPath, bundled];
  return ['node-gyp'];
}

/** The running Node's own headers, so that node-gyp downloads nothing (npm's nodedir setting wins). */
function nodedirArgs() {
  if ((process.env.npm_config_nodedir ?? '') !== '') return [];
  const dir = join(dirname(process.execPath), '..');
  return existsSync(join(dir, 'include', 'node', 'node_api.h')) ? [`--nodedir=${dir}`] : [];
}

function fail(reason, output) {
  mkdirSync(dirname(report), { recursive: true });
  writeFileSync(report, `${JSON.stringify({ ok: false, reason, node: process.version, at: new Date().toISOString() })}\n`);
  const bar = '!'.repeat(78);
  process.stderr.write(
    `\n${bar}\ndataroot: the native addon did not build: ${reason}\n${output ? `${output.trim().split('\n').slice(-25).join('\n')}\n` : ''}` +
      `Every read command works without it, and every snapshot store stays readable. These do not:\n` +
      NEEDS_ADDON.map((c) => `  - ${c}\n`).join('') +
      `To build it: install python3, make, a C compiler and libzstd-dev (Debian: apt-get install python3 make g++ libzstd-dev), then npm rebuild dataroot.\n` +
      `dataroot info shows the addon's state.\n${bar}\n\n`,
  );
  process.exit(0);
}

/** The addon is newer than binding.gyp and every source: nothing to do (npm run build after npm ci). */
function fresh() {
  const out = join(root, 'build', 'Release', 'dataroot_native.node');
  if (!existsSync(out) || process.argv.includes('--force')) return false;
  const built = statSync(out).mtimeMs;
  const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((n) => join(root, 'native', n))];
  return sources.every((f) => statSync(f).mtimeMs <= built);
}

if (fresh()) process.exit(0);
if (process.platform !== 'linux') fail(`the addon is for Linux (this is ${process.platform})`);
if (!existsSync('/usr/include/zstd.h') && !existsSync('/usr/local/include/zstd.h')) fail('zstd.h is missing (libzstd-dev)');
const [cmd, ...pre] = nodeGyp();
const r = spawnSync(cmd, [...pre, 'rebuild', ...nodedirArgs()], { cwd: root, encoding: 'utf8', env: process.env });
if (r.error !== undefined) fail(`node-gyp could not run (${r.error.message})`);
if (r.status !== 0) fail(`node-gyp rebuild failed (exit ${r.status})`, `${r.stdout}\n${r.stderr}`);
writeFileSync(report, `${JSON.stringify({ ok: true, node: process.version, at: new Date().toISOString() })}\n`);
