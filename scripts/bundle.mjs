// Bundles the tsc output (dist/cli/main.js and everything it imports) into one ESM file,
// dist/dataroot.mjs, which bin/dataroot.js loads: one file parses and links faster than
// thirty modules, which is most of a short command's run time.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/cli/main.js'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile: 'dist/dataroot.mjs',
  logLevel: 'warning',
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS dependencies (commander, cli-table3) call require(); give the bundle one.
  banner: { js: "import { createRequire as __dataroot_cr } from 'node:module'; const require = __dataroot_cr(import.meta.url);" },
});
