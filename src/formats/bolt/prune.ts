import { bytesEqual } from '../bytes.js';
import type { BoltVisitor } from './write.js';

/**
 * A filter in front of a visitor: drops the keys and buckets (with everything in them) at the
 * given paths (bucket names, then the key), passing everything else through. Used to replace a
 * record whole: the walk of the old file goes through it, and an edit list then recreates the
 * dropped bucket (an edit that creates a bucket refuses one that exists).
 */
export class PruneVisitor implements BoltVisitor {
  private readonly stack: Uint8Array[] = [];
  /** Depth inside a dropped bucket (0: not inside one). */
  private dropping = 0;
  /** How many were dropped. */
  dropped = 0;

  constructor(
    private readonly out: BoltVisitor,
    private readonly paths: readonly (readonly Uint8Array[])[],
  ) {}

  private hit(key: Uint8Array): boolean {
    const n = this.stack.length;
    for (const p of this.paths) {
      if (p.length !== n + 1 || !bytesEqual(p[n]!, key)) continue;
      let same = true;
      for (let i = 0; i < n && same; i++) same = bytesEqual(p[i]!, this.stack[i]!);
      if (same) return true;
    }
    return false;
  }

  bucket(key: Uint8Array, sequence: bigint): void {
    if (this.dropping > 0) {
      this.dropping++;
      return;
    }
    if (this.hit(key)) {
      this.dropped++;
      this.dropping = 1;
      return;
    }
    this.stack.push(key);
    this.out.bucket(key, sequence);
  }

  put(key: Uint8Array, value: Uint8Array): void {
    if (this.dropping > 0) return;
    if (this.hit(key)) {
      this.dropped++;
      return;
    }
    this.out.put(key, value);
  }

  end(): void {
    if (this.dropping > 0) {
      this.dropping--;
      return;
    }
    this.stack.pop();
    this.out.end();
  }
}
