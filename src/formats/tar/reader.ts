/**
 * A streaming tar reader over `AsyncIterable<Uint8Array>` that keeps every byte that is not file
 * content: the padding after the previous entry, PAX and GNU meta headers with their data, the
 * entry's own header block, and at the end the zero blocks and whatever follows them. That is
 * what tar-split stores, so a layer can be rebuilt byte for byte. The header semantics follow
 * Go's archive/tar reader (which dockerd and tar-split use): GNU long names win over PAX `path`,
 * PAX over ustar prefix/name, `\0` regular files ending in `/` are directories, header-only types
 * carry no data whatever their size field says, and global PAX headers are returned as entries.
 */
import { joinBytes } from '../bytes.js';
import { DatarootError } from '../errors.js';
import { BLOCK, TYPE, decodeHeader, isHeaderOnly, isZeroBlock, padding, parsePax, type RawHeader, type TarFormat } from './header.js';

export interface TarEntry {
  /** Effective name as Go's reader reports it (raw bytes: tar names need not be UTF-8). */
  name: Uint8Array;
  linkname: Uint8Array;
  type: number;
  mode: number;
  uid: number;
  gid: number;
  /** Size as the headers say (PAX `size` wins). */
  size: number;
  /** Bytes of data that follow the header (0 for header-only types). */
  dataSize: number;
  mtime: number;
  /** Nanosecond times from PAX records (mtime, atime), when the archive has them. */
  mtimeNs?: bigint;
  atimeNs?: bigint;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  format: TarFormat;
  /** PAX records of this entry (after merging with global ones). */
  pax: Map<string, Uint8Array>;
  /** Extended attributes from SCHILY.xattr.* records. */
  xattrs: Map<string, Uint8Array>;
  /** Byte offset of the entry's own header block in the archive. */
  offset: number;
  /**
   * Every byte read since the previous entry's data: its padding, meta headers and their data,
   * and this entry's header block.
   */
  raw: Uint8Array;
}

export interface TarEnd {
  /** The padding of the last entry and the end-of-archive zero blocks, as read. */
  raw: Uint8Array;
  /** Everything after the end-of-archive blocks (record padding), possibly empty. */
  remainder: Uint8Array;
  /** Total bytes of the archive. */
  length: number;
}

export interface TarReaderOptions {
  /** Largest meta header data (PAX, GNU long names) accepted; default 1 MiB. */
  maxMetaSize?: number;
  /** Largest trailing data after the end blocks kept; default 1 MiB (more is an error). */
  maxRemainder?: number;
}

const utf8 = new TextDecoder();

/** Go's zero time.Time as Unix seconds. */
const GO_ZERO_UNIX = -62135596800;

/** Positional reads of a file-like source (the io layer supplies one over a file descriptor). */
export interface RandomAccess {
  readonly size: number;
  read(position: number, length: number): Promise<Uint8Array>;
}

interface Queue {
  offset: number;
  take(n: number): Promise<Uint8Array>;
  stream(n: number, what: string): AsyncGenerator<Uint8Array>;
  exact(n: number, what: string): Promise<Uint8Array>;
  rest(limit: number): Promise<Uint8Array>;
  /** Moves past n bytes; over a random-access source without reading them. */
  skip(n: number, what: string): Promise<void>;
}

/** A queue over a random-access source: data that is skipped is never read. */
class RandomQueue implements Queue {
  offset = 0;
  constructor(private readonly src: RandomAccess) {}
  async take(n: number): Promise<Uint8Array> {
    const k = Math.max(0, Math.min(n, this.src.size - this.offset));
    const b = k === 0 ? new Uint8Array() : await this.src.read(this.offset, k);
    this.offset += b.length;
    return b;
  }
  async *stream(n: number, what: string): AsyncGenerator<Uint8Array> {
    let need = n;
    while (need > 0) {
      const b = await this.take(Math.min(need, 1 << 20));
      if (b.length === 0) throw new DatarootError('TAR_TRUNCATED', `the archive ends inside ${what} (${need} of ${n} bytes missing)`, { offset: this.offset });
      need -= b.length;
      yield b;
    }
  }
  async exact(n: number, what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const p of this.stream(n, what)) parts.push(p);
    return joinBytes(parts);
  }
  async rest(limit: number): Promise<Uint8Array> {
    if (this.src.size - this.offset > limit)
      throw new DatarootError('TAR_TRAILING_DATA', `more than ${limit} bytes follow the end of the archive`, { offset: this.offset });
    return this.take(this.src.size - this.offset);
  }
  async skip(n: number, what: string): Promise<void> {
    if (this.offset + n > this.src.size) throw new DatarootError('TAR_TRUNCATED', `the archive ends inside ${what}`, { offset: this.src.size });
    this.offset += n;
  }
}

/** A pull queue over an async byte stream with exact reads. */
class ByteQueue implements Queue {
  private chunk: Uint8Array = new Uint8Array();
  private pos = 0;
  private done = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    while (this.pos >= this.chunk.length) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done === true) {
        this.done = true;
        return false;
      }
      this.chunk = r.value;
      this.pos = 0;
    }
    return true;
  }

  /** Up to n bytes (fewer only at the end of the stream). */
  async take(n: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let need = n;
    while (need > 0 && (await this.fill())) {
      const k = Math.min(need, this.chunk.length - this.pos);
      parts.push(this.chunk.subarray(this.pos, this.pos + k));
      this.pos += k;
      need -= k;
    }
    const out = joinBytes(parts);
    this.offset += out.length;
    // A copy when a part aliases a chunk that a later read may still share: parts are views of
    // chunks the source produced and never reuses (Node streams allocate fresh buffers).
    return out;
  }

  /** Exactly n bytes, yielded as they arrive; a coded error if the stream ends first. */
  async *stream(n: number, what: string): AsyncGenerator<Uint8Array> {
    let need = n;
    while (need > 0) {
      if (!(await this.fill()))
        throw new DatarootError('TAR_TRUNCATED', `the archive ends inside ${what} (${need} of ${n} bytes missing)`, { offset: this.offset });
      const k = Math.min(need, this.chunk.length - this.pos);
      const part = this.chunk.subarray(this.pos, this.pos + k);
      this.pos += k;
      need -= k;
      this.offset += k;
      yield part;
    }
  }

  async exact(n: number, what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const p of this.stream(n, what)) parts.push(p);
    return joinBytes(parts);
  }

  async skip(n: number, what: string): Promise<void> {
    for await (const _ of this.stream(n, what)) void _;
  }

  async rest(limit: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let n = 0;
    while (await this.fill()) {
      const part = this.chunk.subarray(this.pos);
      n += part.length;
      if (n > limit) throw new DatarootError('TAR_TRAILING_DATA', `more than ${limit} bytes follow the end of the archive`, { offset: this.offset });
      parts.push(part);
      this.pos = this.chunk.length;
      this.offset += part.length;
    }
    return joinBytes(parts);
  }
}

function joinName(prefix: Uint8Array, name: Uint8Array): Uint8Array {
  if (prefix.length === 0) return name;
  const out = new Uint8Array(prefix.length + 1 + name.length);
  out.set(prefix, 0);
  out[prefix.length] = 0x2f;
  out.set(name, prefix.length + 1);
  return out;
}

function trimNul(b: Uint8Array): Uint8Array {
  const i = b.indexOf(0);
  return i < 0 ? b : b.subarray(0, i);
}

/** A PAX time ("1234.5678") as nanoseconds. */
function paxTimeNs(v: Uint8Array | undefined, offset: number): bigint | undefined {
  if (v === undefined) return undefined;
  const s = utf8.decode(v);
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (m === null) throw new DatarootError('TAR_BAD_PAX', `PAX time ${JSON.stringify(s)} is not a number`, { offset });
  const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  return m[1] === '-' ? -ns : ns;
}

function paxNumber(v: Uint8Array | undefined, key: string, offset: number): number | undefined {
  if (v === undefined) return undefined;
  const s = utf8.decode(v);
  const n = key === 'mtime' || key === 'atime' || key === 'ctime' ? Number(s) : /^-?\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || (key !== 'mtime' && !Number.isSafeInteger(n)))
    throw new DatarootError('TAR_BAD_PAX', `PAX ${key}=${JSON.stringify(s)} is not a number`, { offset });
  return key === 'mtime' ? Math.floor(n) : n;
}

/**
 * Reads entries one by one. After `next()` returns an entry, its data is read with `data()` (or
 * skipped by the next call to `next()`). When `next()` returns undefined, `end` holds the tail.
 */
export class TarReader {
  private readonly q: Queue;
  /** Over a random-access source, unread data is skipped without being read or kept in `raw`. */
  private readonly keepSkipped: boolean;
  private pendingData = 0;
  private pendingPad = 0;
  private readonly globals = new Map<string, Uint8Array>();
  end: TarEnd | undefined;
  private readonly maxMeta: number;
  private readonly maxRemainder: number;

  constructor(src: AsyncIterable<Uint8Array> | RandomAccess, opts: TarReaderOptions = {}) {
    if (Symbol.asyncIterator in src) {
      this.q = new ByteQueue(src[Symbol.asyncIterator]());
      this.keepSkipped = true;
    } else {
      this.q = new RandomQueue(src);
      this.keepSkipped = false;
    }
    this.maxMeta = opts.maxMetaSize ?? 1 << 20;
    this.maxRemainder = opts.maxRemainder ?? 1 << 20;
  }

  get offset(): number {
    return this.q.offset;
  }

  /** The data of the current entry, as it arrives (views of the input chunks). */
  async *data(): AsyncGenerator<Uint8Array> {
    // What is not read here (the consumer stopped early) is skipped by the next call to next().
    for await (const p of this.q.stream(this.pendingData, 'the data of an entry')) {
      this.pendingData -= p.length;
      yield p;
    }
  }

  async next(): Promise<TarEntry | undefined> {
    if (this.end !== undefined) return undefined;
    const raw: Uint8Array[] = [];
    if (this.pendingData > 0) {
      if (this.keepSkipped) raw.push(await this.q.exact(this.pendingData, 'the data of an entry'));
      else await this.q.skip(this.pendingData, 'the data of an entry');
    }
    this.pendingData = 0;
    if (this.pendingPad > 0) raw.push(await this.q.exact(this.pendingPad, 'the padding of an entry'));
    this.pendingPad = 0;
    let pax = new Map<string, Uint8Array>();
    let longName: Uint8Array | undefined;
    let longLink: Uint8Array | undefined;
    for (;;) {
      const at = this.q.offset;
      const block = await this.q.take(BLOCK);
      if (block.length === 0) return this.finish(raw, at);
      if (block.length < BLOCK)
        throw new DatarootError('TAR_TRUNCATED', `the archive ends inside a header (${block.length} of ${BLOCK} bytes)`, { offset: at });
      raw.push(block);
      if (isZeroBlock(block)) {
        const second = await this.q.take(BLOCK);
        raw.push(second);
        if (second.length === BLOCK && !isZeroBlock(second))
          throw new DatarootError('TAR_BAD_HEADER', 'a zero block is followed by a non-zero block', { offset: at + BLOCK });
        return this.finish(raw, at, true);
      }
      const h = decodeHeader(block, at);
      if (!h.checksumValid) throw new DatarootError('TAR_BAD_HEADER', `header checksum ${h.checksum} does not match the header`, { offset: at });
      if (h.size < 0) throw new DatarootError('TAR_BAD_HEADER', `negative size ${h.size}`, { offset: at });
      switch (h.type) {
        case TYPE.PAX:
        case TYPE.PAX_GLOBAL: {
          if (h.size > this.maxMeta) throw new DatarootError('TAR_BAD_PAX', `a PAX header of ${h.size} bytes is larger than ${this.maxMeta}`, { offset: at });
          const data = await this.q.exact(h.size, 'a PAX header');
          raw.push(data);
          const recs = parsePax(data, at + BLOCK);
          if (h.type === TYPE.PAX_GLOBAL) {
            // Returned as an entry: like Go's reader, its padding is read with the next header.
            for (const [k, v] of recs) this.globals.set(k, v);
            const e = this.entry(h, new Map(recs), trimNul(h.name), h.linkname, raw, at, true);
            this.pendingPad = padding(h.size);
            return e;
          }
          raw.push(await this.q.exact(padding(h.size), 'the padding of a PAX header'));
          pax = recs;
          continue;
        }
        case TYPE.GNU_LONGNAME:
        case TYPE.GNU_LONGLINK: {
          if (h.size > this.maxMeta)
            throw new DatarootError('TAR_BAD_HEADER', `a GNU long name of ${h.size} bytes is larger than ${this.maxMeta}`, { offset: at });
          const data = await this.q.exact(h.size, 'a GNU long name');
          raw.push(data);
          raw.push(await this.q.exact(padding(h.size), 'the padding of a GNU long name'));
          if (h.type === TYPE.GNU_LONGNAME) longName = trimNul(data);
          else longLink = trimNul(data);
          continue;
        }
        case TYPE.GNU_SPARSE:
          throw new DatarootError('TAR_UNSUPPORTED', 'GNU sparse files are not supported', { offset: at });
        default: {
          const merged = new Map([...this.globals, ...pax]);
          let name = h.format === 'ustar' ? joinName(h.prefix, h.name) : h.name;
          let link = h.linkname;
          if (merged.has('path')) name = merged.get('path')!;
          if (merged.has('linkpath')) link = merged.get('linkpath')!;
          if (longName !== undefined) name = longName;
          if (longLink !== undefined) link = longLink;
          if ([...merged.keys()].some((k) => k.startsWith('GNU.sparse.')))
            throw new DatarootError('TAR_UNSUPPORTED', 'PAX sparse files are not supported', { offset: at });
          return this.entry(h, merged, name, link, raw, at, false);
        }
      }
    }
  }

  private entry(h: RawHeader, pax: Map<string, Uint8Array>, name: Uint8Array, link: Uint8Array, raw: Uint8Array[], at: number, global: boolean): TarEntry {
    let type = h.type;
    if (type === TYPE.REGA) type = name.length > 0 && name[name.length - 1] === 0x2f ? TYPE.DIR : TYPE.REG;
    const size = global ? 0 : (paxNumber(pax.get('size'), 'size', at) ?? h.size);
    if (size < 0) throw new DatarootError('TAR_BAD_HEADER', `negative size ${size}`, { offset: at });
    const dataSize = global || isHeaderOnly(type) ? 0 : size;
    const xattrs = new Map<string, Uint8Array>();
    for (const [k, v] of pax) if (k.startsWith('SCHILY.xattr.')) xattrs.set(k.slice('SCHILY.xattr.'.length), v);
    this.pendingData = dataSize;
    this.pendingPad = padding(dataSize);
    if (global) {
      // Go returns a global header with its name, type and records only (zero values elsewhere).
      return {
        name,
        linkname: new Uint8Array(),
        type,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        dataSize: 0,
        mtime: GO_ZERO_UNIX,
        uname: '',
        gname: '',
        devmajor: 0,
        devminor: 0,
        format: h.format,
        pax,
        xattrs,
        offset: at,
        raw: joinBytes(raw),
      };
    }
    return {
      name,
      linkname: link,
      type,
      mode: h.mode,
      uid: paxNumber(pax.get('uid'), 'uid', at) ?? h.uid,
      gid: paxNumber(pax.get('gid'), 'gid', at) ?? h.gid,
      size,
      dataSize,
      mtime: paxNumber(pax.get('mtime'), 'mtime', at) ?? h.mtime,
      ...(pax.has('mtime') ? { mtimeNs: paxTimeNs(pax.get('mtime'), at)! } : {}),
      ...(pax.has('atime') ? { atimeNs: paxTimeNs(pax.get('atime'), at)! } : {}),
      uname: pax.has('uname') ? utf8.decode(pax.get('uname')) : utf8.decode(h.uname),
      gname: pax.has('gname') ? utf8.decode(pax.get('gname')) : utf8.decode(h.gname),
      devmajor: h.devmajor,
      devminor: h.devminor,
      format: h.format,
      pax,
      xattrs,
      offset: at,
      raw: joinBytes(raw),
    };
  }

  private async finish(raw: Uint8Array[], at: number, zeroBlocks = false): Promise<undefined> {
    const remainder = zeroBlocks ? await this.q.rest(this.maxRemainder) : new Uint8Array();
    void at;
    this.end = { raw: joinBytes(raw), remainder, length: this.q.offset };
    return undefined;
  }
}

/** The name as text when it is valid UTF-8 (else undefined: use the bytes). */
export function nameText(b: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return undefined;
  }
}
