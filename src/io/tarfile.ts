import { open, type FileHandle } from 'node:fs/promises';
import { DatarootError } from '../formats/errors.js';
import { resolveLexically } from '../formats/relpath.js';
import { TYPE } from '../formats/tar/header.js';
import { TarReader, type RandomAccess } from '../formats/tar/reader.js';
import { fileChunks } from './streams.js';

/** Positional reads of a file for the tar reader: skipped data is never read. */
export class FileRandomAccess implements RandomAccess {
  private constructor(
    private readonly fh: FileHandle,
    readonly size: number,
  ) {}
  static async open(path: string): Promise<FileRandomAccess> {
    const fh = await open(path, 'r');
    const st = await fh.stat();
    return new FileRandomAccess(fh, st.size);
  }
  async read(position: number, length: number): Promise<Uint8Array> {
    const b = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fh.read(b, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return b.subarray(0, done);
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

export interface TarMember {
  /** Normalized name: no leading `./` or `/`, no trailing `/`. */
  name: string;
  type: number;
  size: number;
  /** Where the member's data starts in the archive file. */
  dataOffset: number;
  linkname: string;
  mode: number;
}

/** `./a/b/` → `a/b` (how docker save and OCI tools name members, whatever tool made the tar). */
export function memberName(raw: string): string {
  let n = raw;
  while (n.startsWith('./')) n = n.slice(2);
  while (n.startsWith('/')) n = n.slice(1);
  while (n.endsWith('/')) n = n.slice(0, -1);
  return n;
}

/** Resolves `target` relative to the directory of `from` (archive paths); undefined when it escapes. */
export function resolveMemberPath(from: string, target: string): string | undefined {
  return resolveLexically(target.startsWith('/') ? [] : from.split('/').slice(0, -1), target)?.join('/');
}

/**
 * An uncompressed tar file indexed by positional reads of its headers (member data is not read),
 * so members can then be streamed in any order: manifest.json comes last in a `docker save`.
 */
export class TarIndex {
  readonly members = new Map<string, TarMember>();
  readonly duplicates: string[] = [];

  private constructor(readonly path: string) {}

  static async build(path: string, maxMembers = 1_000_000): Promise<TarIndex> {
    const idx = new TarIndex(path);
    const ra = await FileRandomAccess.open(path);
    try {
      const tr = new TarReader(ra);
      for (let e = await tr.next(); e !== undefined; e = await tr.next()) {
        if (e.type === TYPE.PAX_GLOBAL) continue;
        const name = memberName(new TextDecoder().decode(e.name));
        if (idx.members.has(name)) idx.duplicates.push(name);
        idx.members.set(name, { name, type: e.type, size: e.dataSize, dataOffset: tr.offset, linkname: new TextDecoder().decode(e.linkname), mode: e.mode });
        if (idx.members.size > maxMembers) throw new DatarootError('ARCHIVE_TOO_MANY_ENTRIES', `more than ${maxMembers} entries`, { file: path });
      }
    } catch (e) {
      if (e instanceof DatarootError)
        throw new DatarootError(e.code === 'TAR_TRUNCATED' ? 'ARCHIVE_TRUNCATED' : 'ARCHIVE_CORRUPT', `${path} is not a readable tar archive: ${e.message}`, {
          file: path,
        });
      throw e;
    } finally {
      await ra.close();
    }
    return idx;
  }

  /** The regular member a name leads to, following symbolic and hard links inside the archive. */
  resolve(name: string): TarMember | undefined {
    let cur = memberName(name);
    for (let i = 0; i < 16; i++) {
      const m = this.members.get(cur);
      if (m === undefined) return undefined;
      if (m.type === TYPE.SYMLINK) {
        const next = resolveMemberPath(cur, m.linkname);
        if (next === undefined) return undefined;
        cur = next;
      } else if (m.type === TYPE.LINK) cur = memberName(m.linkname);
      else if (m.type === TYPE.REG || m.type === TYPE.CONT) return m;
      else return undefined;
    }
    return undefined;
  }

  has(name: string): boolean {
    return this.resolve(name) !== undefined;
  }

  open(name: string): AsyncIterable<Uint8Array> {
    const m = this.resolve(name);
    if (m === undefined) throw new DatarootError('ARCHIVE_MEMBER_MISSING', `the archive has no file ${name}`, { file: this.path });
    return fileChunks(this.path, m.dataOffset, m.size);
  }

  async readAll(name: string, max = 64 << 20): Promise<Buffer> {
    const m = this.resolve(name);
    if (m === undefined) throw new DatarootError('ARCHIVE_MEMBER_MISSING', `the archive has no file ${name}`, { file: this.path });
    if (m.size > max) throw new DatarootError('ARCHIVE_MEMBER_TOO_LARGE', `${name} has ${m.size} bytes (more than ${max})`, { file: this.path });
    const parts: Uint8Array[] = [];
    for await (const c of this.open(name)) parts.push(c);
    return Buffer.concat(parts);
  }
}
