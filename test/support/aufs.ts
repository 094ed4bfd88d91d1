import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getXattr } from '../../src/io/native.js';

/**
 * Lays out a real overlay2 data-root in aufs form, as dockerd's aufs driver (daemon/graphdriver/aufs,
 * removed in 24.0; read at v20.10.24) keeps it, so the aufs adapter is tested on real layers:
 * - `aufs/diff/<id>` holds the layer's own files with aufs whiteouts: a name hidden by a 0/0
 *   character device becomes an empty file `.wh.<name>`, an opaque directory
 *   (trusted.overlay.opaque=y) gets an empty `.wh..wh..opq` file (applyDiff untars verbatim, and
 *   the layer tars carry whiteouts in exactly that form);
 * - `aufs/layers/<id>` lists the ancestors, nearest first, one id a line, each ending in a newline
 *   (Create: fmt.Fprintln of the parent and the parent's own list); a base layer's file is empty;
 * - `aufs/mnt/<id>` is an empty mount point;
 * - read-write branches (container layers) get what the aufs module adds at their top:
 *   `.wh..wh.aufs`, `.wh..wh.plnk/` and `.wh..wh.orph/`;
 * - `image/overlay2` becomes `image/aufs`, containers' `Driver` becomes `aufs`.
 */
export function overlay2ToAufs(src: string, dst: string, rwLayers: Set<string>): void {
  const cp = spawnSync('cp', ['-a', src, dst], { encoding: 'utf8' });
  if (cp.status !== 0) throw new Error(`cp -a failed: ${cp.stderr}`);
  const ov = join(dst, 'overlay2');
  for (const sub of ['diff', 'layers', 'mnt']) mkdirSync(join(dst, 'aufs', sub), { recursive: true, mode: 0o700 });
  const byLink = new Map<string, string>();
  for (const l of readdirSync(join(ov, 'l'))) byLink.set(l, readlinkSync(join(ov, 'l', l)).split('/')[1]!);
  for (const id of readdirSync(ov)) {
    if (id === 'l' || id === 'backingFsBlockDev') continue;
    const diff = join(dst, 'aufs', 'diff', id);
    spawnSync('mv', [join(ov, id, 'diff'), diff]);
    convertWhiteouts(diff);
    let lower: string;
    try {
      lower = readFileSync(join(ov, id, 'lower'), 'utf8');
    } catch {
      lower = '';
    }
    const ancestors = lower === '' ? [] : lower.split(':').map((e) => byLink.get(e.slice(2))!);
    writeFileSync(join(dst, 'aufs', 'layers', id), ancestors.map((a) => `${a}\n`).join(''));
    mkdirSync(join(dst, 'aufs', 'mnt', id), { mode: 0o755 });
    if (rwLayers.has(id)) {
      writeFileSync(join(diff, '.wh..wh.aufs'), '', { mode: 0o444 });
      mkdirSync(join(diff, '.wh..wh.plnk'), { mode: 0o700 });
      mkdirSync(join(diff, '.wh..wh.orph'), { mode: 0o700 });
    }
  }
  rmSync(ov, { recursive: true, force: true });
  spawnSync('mv', [join(dst, 'image', 'overlay2'), join(dst, 'image', 'aufs')]);
  for (const c of readdirSync(join(dst, 'containers'))) {
    const p = join(dst, 'containers', c, 'config.v2.json');
    const cfg = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    cfg['Driver'] = 'aufs';
    writeFileSync(p, JSON.stringify(cfg));
  }
}

function convertWhiteouts(dir: string): void {
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    const opaque = getXattr(d, 'trusted.overlay.opaque');
    if (opaque !== undefined && opaque.toString() === 'y') {
      spawnSync('setfattr', ['-x', 'trusted.overlay.opaque', d]);
      writeFileSync(join(d, '.wh..wh..opq'), '', { mode: 0o444 });
    }
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isCharacterDevice() && st.rdev === 0) {
        rmSync(p);
        writeFileSync(join(d, `.wh.${n}`), '', { mode: 0o444 });
      } else if (st.isDirectory()) stack.push(p);
    }
  }
}
