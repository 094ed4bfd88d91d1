// Compiles native/dataroot_native.c (xattrs, mknod, nanosecond utimes: what Node lacks) into
// dist/dataroot_native.node with the system C compiler and the headers of the running Node
// (plus libzstd when its headers are installed).
// No node-gyp, no download. Without a compiler the build goes on: commands that need the addon
// (container diff of overlay2, inject, snapshot, restore) then stop with IO_NATIVE_UNAVAILABLE.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, '..', 'native', 'dataroot_native.c');
const out = join(here, '..', 'dist', 'dataroot_native.node');
const includes = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'];
const inc = includes.find((d) => existsSync(join(d, 'node_api.h')));
const cc = process.env.CC ?? 'cc';
if (inc === undefined) {
  console.warn(`build-native: Node's headers (node_api.h) not found in ${includes.join(', ')}; native features disabled`);
  process.exit(0);
}
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}`;
// libzstd (Debian libzstd-dev) gives the snapshot store fast compression; without it the store
// falls back to Node's brotli.
const zstd = ['/usr/include/zstd.h', '/usr/local/include/zstd.h'].some((h) => existsSync(h)) ? ['-DHAVE_ZSTD'] : [];
const r = spawnSync(cc, ['-O2', '-Wall', '-Werror', '-shared', '-fPIC', '-pthread', '-DNODE_GYP_MODULE_NAME=dataroot_native', ...zstd, `-I${inc}`, '-o', tmp, src, ...(zstd.length > 0 ? ['-lzstd'] : [])], { encoding: 'utf8' });
if (r.error !== undefined || r.status !== 0) {
  console.warn(`build-native: ${cc} failed; native features disabled\n${r.stderr ?? r.error?.message ?? ''}`);
  process.exit(0);
}
renameSync(tmp, out);
