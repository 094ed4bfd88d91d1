import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { TYPE } from '../../src/formats/tar/header.js';
import { tarBytes, type WriteEntry } from '../../src/formats/tar/writer.js';

const te = new TextEncoder();
export const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Spec {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'fifo';
  data?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
}

const TYPES = { file: TYPE.REG, dir: TYPE.DIR, symlink: TYPE.SYMLINK, link: TYPE.LINK, char: TYPE.CHAR, fifo: TYPE.FIFO } as const;

/** A layer tar written by dataroot's own tar writer (hand-made layers, hostile ones included). */
export function layerTar(specs: Spec[]): Buffer {
  return Buffer.from(
    tarBytes(
      specs.map((s) => {
        const data = s.data === undefined ? undefined : typeof s.data === 'string' ? te.encode(s.data) : s.data;
        const type = TYPES[s.type ?? 'file'];
        const entry: WriteEntry = {
          name: te.encode(s.name),
          mode: s.mode ?? (type === TYPE.DIR ? 0o755 : 0o644),
          uid: s.uid ?? 0,
          gid: s.gid ?? 0,
          size: data?.length ?? 0,
          mtime: s.mtime ?? 1_700_000_000,
          type,
          ...(s.linkname !== undefined ? { linkname: te.encode(s.linkname) } : {}),
        };
        return data === undefined ? { entry } : { entry, data };
      }),
    ),
  );
}

export interface ImageDirOptions {
  layers: Buffer[];
  tags: string[];
  /** Extra config fields (merged into the default config). */
  config?: Record<string, unknown>;
  /** How the layer files are stored. */
  compress?: 'gzip' | 'zstd';
  /** Override the diff_ids written into the config (for mismatches). */
  diffIds?: string[];
  /** Override the manifest's layer list (for mismatches). */
  manifestLayers?: string[];
}

/**
 * A `docker save` (legacy layout) directory: <hex>.json config, <n>/layer.tar, manifest.json.
 * Returns the image ID and the diffIDs.
 */
export function writeImageDir(dir: string, o: ImageDirOptions): { id: string; diffIds: string[]; config: Buffer } {
  mkdirSync(dir, { recursive: true });
  const diffIds = o.diffIds ?? o.layers.map((l) => sha(l));
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-02T03:04:05Z',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: o.layers.map((_, i) => ({ created: '2026-01-02T03:04:05Z', created_by: `layer ${i}` })),
      ...(o.config ?? {}),
    }),
  );
  const id = sha(config);
  writeFileSync(join(dir, `${id.slice(7)}.json`), config);
  const paths = o.layers.map((l, i) => {
    const p = `${i}/layer.tar`;
    mkdirSync(join(dir, String(i)), { recursive: true });
    let bytes: Buffer = l;
    if (o.compress === 'gzip') bytes = gzipSync(l);
    if (o.compress === 'zstd') bytes = spawnSync('zstd', ['-q', '-c'], { input: l, maxBuffer: 1 << 30 }).stdout;
    writeFileSync(join(dir, p), bytes);
    return p;
  });
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: o.tags, Layers: o.manifestLayers ?? paths }])}\n`);
  return { id, diffIds, config };
}

/** tar of a directory's contents (how docker save archives look: member names without ./). */
export function tarOf(dir: string, out: string): void {
  const r = spawnSync('sh', ['-c', `cd '${dir}' && tar --numeric-owner -cf '${out}' *`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
}
