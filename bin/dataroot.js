#!/usr/bin/env node
// The CLI: the bundled build (dist/bundle/dataroot.mjs) when present, else tsc's dist/cli/main.js.
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/bundle/dataroot.mjs', import.meta.url);
const { main } = existsSync(bundle) ? await import(bundle.href) : await import('../dist/cli/main.js');
process.exitCode = await main(process.argv);
