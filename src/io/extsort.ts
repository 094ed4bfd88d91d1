import { closeSync, mkdtempSync, openSync, readSync, writeSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOnExit } from './cleanup.js';

/**
 * Sorts more lines than fit in memory: lines are collected into runs of at most `runLines`, each
 * run sorted and written to a private temp dir (0700, removed at the end and on signals), and the
 * runs merged with a heap. Lines are strings without newlines, compared as strings (callers put a
 * fixed-width key first). Fewer lines than one run never touch the disk.
 */
export class ExternalSorter {
  private buf: string[] = [];
  private runs: string[] = [];
  private dir: string | undefined;
  private remove: (() => void) | undefined;
  count = 0;

  constructor(private readonly runLines = 200_000) {}

  add(line: string): void {
    this.buf.push(line);
    this.count++;
    if (this.buf.length >= this.runLines) this.spill();
  }

  private spill(): void {
    if (this.buf.length === 0) return;
    if (this.dir === undefined) {
      this.dir = mkdtempSync(join(tmpdir(), 'dataroot-sort-'));
      this.remove = removeOnExit(this.dir);
    }
    this.buf.sort(cmp);
    const file = join(this.dir, `run-${this.runs.length}`);
    const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      let chunk = '';
      for (const l of this.buf) {
        chunk += `${l}\n`;
        if (chunk.length > 1 << 20) {
          writeAll(fd, chunk);
          chunk = '';
        }
      }
      if (chunk !== '') writeAll(fd, chunk);
    } finally {
      closeSync(fd);
    }
    this.runs.push(file);
    this.buf = [];
  }

  /** Every line added, in order; the temp files are removed when the iteration ends. */
  *sorted(): Generator<string> {
    try {
      if (this.runs.length === 0) {
        this.buf.sort(cmp);
        yield* this.buf;
        return;
      }
      this.spill();
      const readers = this.runs.map((f) => new LineReader(f));
      const heap: { line: string; r: number }[] = [];
      const push = (item: { line: string; r: number }): void => {
        heap.push(item);
        let i = heap.length - 1;
        while (i > 0) {
          const p = (i - 1) >> 1;
          if (cmp(heap[p]!.line, heap[i]!.line) <= 0) break;
          [heap[p], heap[i]] = [heap[i]!, heap[p]!];
          i = p;
        }
      };
      const pop = (): { line: string; r: number } => {
        const top = heap[0]!;
        const last = heap.pop()!;
        if (heap.length > 0) {
          heap[0] = last;
          let i = 0;
          for (;;) {
            const l = 2 * i + 1;
            const r = l + 1;
            let m = i;
            if (l < heap.length && cmp(heap[l]!.line, heap[m]!.line) < 0) m = l;
            if (r < heap.length && cmp(heap[r]!.line, heap[m]!.line) < 0) m = r;
            if (m === i) break;
            [heap[m], heap[i]] = [heap[i]!, heap[m]!];
            i = m;
          }
        }
        return top;
      };
      try {
        readers.forEach((rd, r) => {
          const l = rd.next();
          if (l !== undefined) push({ line: l, r });
        });
        while (heap.length > 0) {
          const { line, r } = pop();
          yield line;
          const n = readers[r]!.next();
          if (n !== undefined) push({ line: n, r });
        }
      } finally {
        for (const rd of readers) rd.close();
      }
    } finally {
      this.cleanup();
    }
  }

  /** Runs written so far (for tests: proves the merge ran). */
  get runCount(): number {
    return this.runs.length;
  }

  cleanup(): void {
    this.buf = [];
    this.remove?.();
    this.remove = undefined;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function writeAll(fd: number, s: string): void {
  const b = Buffer.from(s);
  let off = 0;
  while (off < b.length) off += writeSync(fd, b, off, b.length - off);
}

/** Lines of a file this process wrote, read in chunks. */
class LineReader {
  private fd: number;
  private pos = 0;
  /** Bytes after the last newline read so far (a chunk may end inside a UTF-8 sequence). */
  private rest: Buffer = Buffer.alloc(0);
  private lines: string[] = [];
  private i = 0;
  private eof = false;
  private readonly buf = Buffer.allocUnsafe(1 << 18);
  constructor(file: string) {
    this.fd = openSync(file, 'r');
  }
  next(): string | undefined {
    while (this.i >= this.lines.length) {
      if (this.eof) return undefined;
      const n = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
      this.pos += n;
      if (n === 0) {
        this.eof = true;
        this.lines = this.rest.length === 0 ? [] : [this.rest.toString('utf8')];
        this.rest = Buffer.alloc(0);
        this.i = 0;
        continue;
      }
      const last = this.buf.lastIndexOf(0x0a, n - 1);
      if (last < 0) {
        this.rest = Buffer.concat([this.rest, this.buf.subarray(0, n)]);
        continue;
      }
      const text = Buffer.concat([this.rest, this.buf.subarray(0, last)]).toString('utf8');
      this.rest = Buffer.from(this.buf.subarray(last + 1, n));
      this.lines = text.split('\n');
      this.i = 0;
    }
    return this.lines[this.i++];
  }
  close(): void {
    closeSync(this.fd);
  }
}
