/**
 * What the bolt reader needs from storage: positional reads of a file of known size.
 * The io layer supplies a file-backed source with a bounded cache; tests may use a buffer.
 * `read` returns exactly `length` bytes; the caller checks bounds first.
 */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

export class BufferSource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
}
