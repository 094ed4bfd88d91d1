// Bundles the tsc output (dist/cli/main.js and everything it imports) into dist/bundle/: an
// entry (dataroot.mjs) and one chunk per command group (split at the dynamic imports of
// cli/program.ts), which bin/dataroot.js loads. A few files parse and link faster than many
// modules, and a command loads only its own group: most of a short command's run time.
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

rmSync('dist/bundle', { recursive: true, force: true });

await build({
  entryPoints: { dataroot: 'dist/cli/main.js' },
  splitting: true,
  outdir: 'dist/bundle',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
  minify: true,
  keepNames: false,
  // sql.js (SQLite as WebAssembly) finds its .wasm beside itself: loaded from node_modules, on demand.
  external: ['sql.js'],
  // CommonJS dependencies (commander) call require(); give the bundle one.
  banner: { js: "import { createRequire as __dataroot_cr } from 'node:module'; const require = __dataroot_cr(import.meta.url);" },
});
