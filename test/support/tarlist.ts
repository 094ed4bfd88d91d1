import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * An entry listing of a tar file for comparing archives: its own small ustar/PAX reader (not
 * dataroot's), so the tool under test does not grade itself. Each entry: name, type flag, mode,
 * owner (ids and names), size, mtime, link target, device numbers, PAX xattrs, and the sha256 of
 * its data.
 */
export interface ListedEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  link: string;
  dev: string;
  xattrs: Record<string, string>;
  sha256: string;
}

function str(b: Buffer, off: number, len: number): string {
  const f = b.subarray(off, off + len);
  const nul = f.indexOf(0);
  return (nul < 0 ? f : f.subarray(0, nul)).toString('latin1');
}

function oct(b: Buffer, off: number, len: number): number {
  const s = str(b, off, len).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

export function listTar(file: string): ListedEntry[] {
  const buf = readFileSync(file);
  const out: ListedEntry[] = [];
  let pax: Record<string, string> = {};
  let off = 0;
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512);
    if (h.every((c) => c === 0)) break;
    const type = String.fromCharCode(h[156]!);
    const size = oct(h, 124, 12);
    const data = buf.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      pax = {};
      let i = 0;
      while (i < data.length) {
        const sp = data.indexOf(0x20, i);
        const len = Number(data.subarray(i, sp).toString('latin1'));
        const rec = data.subarray(sp + 1, i + len - 1).toString('latin1');
        const eq = rec.indexOf('=');
        pax[rec.slice(0, eq)] = rec.slice(eq + 1);
        i += len;
      }
      continue;
    }
    const prefix = str(h, 345, 155);
    let name = prefix !== '' ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100);
    if (pax['path'] !== undefined) name = pax['path'];
    const xattrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(pax)) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = Buffer.from(v, 'latin1').toString('hex');
    out.push({
      name,
      type,
      mode: oct(h, 100, 8),
      uid: pax['uid'] !== undefined ? Number(pax['uid']) : oct(h, 108, 8),
      gid: pax['gid'] !== undefined ? Number(pax['gid']) : oct(h, 116, 8),
      uname: pax['uname'] ?? str(h, 265, 32),
      gname: pax['gname'] ?? str(h, 297, 32),
      size: pax['size'] !== undefined ? Number(pax['size']) : size,
      mtime: pax['mtime'] !== undefined ? Number(pax['mtime']) : oct(h, 136, 12),
      link: pax['linkpath'] ?? str(h, 157, 100),
      dev: type === '3' || type === '4' ? `${oct(h, 329, 8)},${oct(h, 337, 8)}` : '',
      xattrs,
      sha256: createHash('sha256').update(data).digest('hex'),
    });
    pax = {};
  }
  return out;
}

/** One line per entry (without mtime when `withTime` is false), for readable comparisons. */
export function listingLines(entries: ListedEntry[], withTime = true): string[] {
  return entries.map((e) =>
    [
      e.name,
      e.type,
      e.mode.toString(8),
      `${e.uid}:${e.gid}`,
      `${e.uname}:${e.gname}`,
      e.size,
      withTime ? e.mtime : '-',
      e.link,
      e.dev,
      JSON.stringify(e.xattrs),
      e.sha256.slice(0, 16),
    ].join(' '),
  );
}

/** The tree under DIR as the same listing as a tar's (hard links as '1' to the first name in walk order). */
export function listTree(root: string): ListedEntry[] {
  const out: ListedEntry[] = [];
  const seen = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(rel === '' ? root : join(root, rel), { encoding: 'latin1' }).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const abs = Buffer.from(join(root, r), 'latin1');
      const st = lstatSync(abs);
      const type = st.isDirectory() ? '5' : st.isSymbolicLink() ? '2' : st.isFIFO() ? '6' : st.isCharacterDevice() ? '3' : st.isBlockDevice() ? '4' : '0';
      const key = `${st.dev}:${st.ino}`;
      const first = type !== '5' && st.nlink > 1 ? seen.get(key) : undefined;
      if (type !== '5' && st.nlink > 1 && first === undefined) seen.set(key, r);
      const data = type === '0' && first === undefined ? readFileSync(abs) : Buffer.alloc(0);
      out.push({
        name: Buffer.from(type === '5' ? `${r}/` : r, 'latin1').toString('latin1'),
        type: first !== undefined ? '1' : type,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        uname: '',
        gname: '',
        size: data.length,
        mtime: Math.floor(st.mtimeMs / 1000),
        link: first !== undefined ? first : type === '2' ? readlinkSync(abs, { encoding: 'latin1' }) : '',
        dev: type === '3' || type === '4' ? `${Math.floor(st.rdev / 256)},${st.rdev % 256}` : '',
        xattrs: {},
        sha256: createHash('sha256').update(data).digest('hex'),
      });
      if (type === '5') walk(r);
    }
  };
  walk('');
  return out;
}

/** A listing without what only a tar carries (user and group names, PAX xattrs). */
export function withoutNames(es: ListedEntry[]): ListedEntry[] {
  return es.map((e) => ({ ...e, uname: '', gname: '', xattrs: {} }));
}
