import { open, type FileHandle } from 'node:fs/promises';
import { DatarootError } from '../formats/errors.js';

async function readFull(fh: FileHandle, buf: Buffer, len: number, pos: number, path: string): Promise<Buffer> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
    if (bytesRead === 0) throw new DatarootError('IO_SHORT_READ', `the file ended at ${pos + done} (it shrank?)`, { file: path, offset: pos + done });
    done += bytesRead;
  }
  return buf.subarray(0, len);
}

/**
 * The first `length` bytes of a file as consecutive windows, read ahead on libuv's thread pool
 * (`ahead` reads in flight), so the consumer works on one window while the next ones are read.
 * `ahead + 1` buffers rotate: a window stays valid until the consumer asks for the next one.
 */
export async function* readWindows(path: string, length: number, windowSize: number, ahead = 2): AsyncGenerator<Uint8Array> {
  const fh = await open(path, 'r');
  const inFlight: Promise<Buffer>[] = [];
  try {
    const ring = Array.from({ length: ahead + 1 }, () => Buffer.allocUnsafe(windowSize));
    let pos = 0;
    let k = 0;
    const start = (): void => {
      if (pos >= length) return;
      const len = Math.min(windowSize, length - pos);
      inFlight.push(readFull(fh, ring[k % ring.length]!, len, pos, path));
      pos += len;
      k++;
    };
    for (let i = 0; i < ahead; i++) start();
    while (inFlight.length > 0) {
      const cur = await inFlight.shift()!;
      start();
      yield cur;
    }
  } finally {
    await Promise.allSettled(inFlight);
    await fh.close();
  }
}
