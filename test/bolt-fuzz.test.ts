import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exercise, mulberry32, mutate, toHighWaterMark } from './support/fuzz.js';
import { untar as unpackTar } from './support/untar.js';
import { haveCommand, REQUIRE_E2E } from './support/env.js';
import { gen } from './support/gobolt.js';
import { SAMPLES } from './support/cli.js';

/**
 * Robustness: valid files (real Docker ones from the samples, and Go-written ones) truncated,
 * bit-flipped and rewired (page ids, counts, element offsets, overflow, meta fields with a
 * recomputed checksum so the damage gets past open). Every case must end in a result or a
 * DatarootError, within a time bound.
 */
const CASES = Number(process.env['DATAROOT_FUZZ_CASES'] ?? 20000);
const CASE_LIMIT_MS = 2000;

function bases(): { name: string; bytes: Uint8Array }[] {
  const out: { name: string; bytes: Uint8Array }[] = [];
  const u = unpackTar(join(SAMPLES, 'after-build.tar.gz'));
  try {
    for (const rel of ['network/files/local-kv.db', 'volumes/metadata.db', 'containerd/daemon/io.containerd.metadata.v1.bolt/meta.db', 'buildkit/cache.db']) {
      out.push({ name: rel, bytes: toHighWaterMark(new Uint8Array(readFileSync(join(u.dir, rel)))) });
    }
  } finally {
    u.cleanup();
  }
  if (haveCommand('go')) {
    const dir = mkdtempSync(join(tmpdir(), 'dataroot-fuzz-'));
    try {
      for (const [s, ps] of [
        ['inline', 1024],
        ['deep', 1024],
        ['nofreelist', 1024],
        ['bigvalues', 1024],
        ['sequences', 1024],
        ['binary', 1024],
      ] as const) {
        const file = join(dir, `${s}.db`);
        gen(file, 3, s, ps);
        out.push({ name: `${s}-${ps}`, bytes: toHighWaterMark(new Uint8Array(readFileSync(file))) });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } else if (REQUIRE_E2E) throw new Error('DATAROOT_REQUIRE_E2E=1 but go is not installed');
  return out;
}

describe('bolt reader fuzz', () => {
  const files = bases();
  afterAll(() => {});

  it('every base file reads cleanly before mutation', async () => {
    for (const f of files) expect(await exercise(f.bytes), f.name).toBe('ok,ok,ok,ok,ok,ok');
  });

  it(`${CASES} mutated files end in a result or a coded error, each within ${CASE_LIMIT_MS} ms`, async () => {
    const rnd = mulberry32(Number(process.env['DATAROOT_FUZZ_SEED'] ?? 0xda7a));
    const codes = new Map<string, number>();
    let slowest = 0;
    for (let i = 0; i < CASES; i++) {
      // The cases are synchronous work: a turn of the event loop now and then keeps vitest's
      // worker answering its runner (a blocked worker fails the run with an RPC timeout under load).
      if (i % 250 === 0) await new Promise((r) => setImmediate(r));
      const base = files[i % files.length]!;
      const seed = Math.floor(rnd() * 2 ** 32);
      const bytes = mutate(base.bytes, mulberry32(seed));
      const t0 = performance.now();
      let outcome: string;
      try {
        outcome = await exercise(bytes);
      } catch (e) {
        throw new Error(`case ${i} (base ${base.name}, seed ${seed}) threw ${(e as Error).name}: ${(e as Error).message}`, { cause: e });
      }
      const ms = performance.now() - t0;
      slowest = Math.max(slowest, ms);
      if (ms > CASE_LIMIT_MS) throw new Error(`case ${i} (base ${base.name}, seed ${seed}) took ${ms.toFixed(0)} ms`);
      for (const c of outcome.split(',')) codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    // The mutations must reach past open: both clean reads and corruption findings occur.
    expect(codes.get('ok') ?? 0).toBeGreaterThan(CASES / 10);
    expect(codes.get('BOLT_CORRUPT') ?? 0).toBeGreaterThan(CASES / 100);
    expect(slowest).toBeLessThan(CASE_LIMIT_MS);
  }, 900_000);
});
