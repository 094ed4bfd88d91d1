import { describe, expect, it } from 'vitest';
import { decodeLogEntry, encodeLogEntry, frame, frameWord, LogEntryError } from './logentry.js';
import { frames, lines } from './stream.js';

const enc = new TextEncoder();
const fromHex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/**
 * A record as dockerd 20.10's local driver wrote it (od of local-logs/container.log, hand-split):
 * source "stdout", time_nano, line "end", partial true, metadata { id (64 hex), ordinal 1 }.
 */
const ID = 'c2d72d1c0eb1c49d254b6529434dd89190ffb2f901412c5d015d3f7d40aa3f0c';
const REAL = fromHex(`0a 06 737464 6f7574  10 afb196a4d7ca9ff718  1a 03 656e64  20 01  2a 44 12 40 ${Buffer.from(ID).toString('hex')} 18 01`);

describe('LogEntry (local driver records)', () => {
  it('decodes a record dockerd wrote (hand-checked bytes)', () => {
    const e = decodeLogEntry(REAL);
    expect(e.source).toBe('stdout');
    expect(Buffer.from(e.line).toString()).toBe('end');
    expect(e.partial).toBe(true);
    expect(e.partialMeta).toEqual({ last: false, id: ID, ordinal: 1 });
    // 0xafb196a4d7ca9ff718 as a varint: the nanoseconds of 2026-12-05T23:10:06.859638959Z.
    expect(e.timeNano).toBe(1796512206859638959n);
  });

  it('encodes as gogo-protobuf does (the same bytes back)', () => {
    expect(Buffer.from(encodeLogEntry(decodeLogEntry(REAL))).toString('hex')).toBe(Buffer.from(REAL).toString('hex'));
  });

  it('frames: size before and after, big-endian', () => {
    const f = frame(REAL);
    expect(frameWord(f, 0)).toBe(REAL.length);
    expect(frameWord(f, f.length - 4)).toBe(REAL.length);
    expect(Buffer.from(f.subarray(0, 4)).toString('hex')).toBe('0000005f');
  });

  it('skips unknown fields of every wire type; the last value of a field wins', () => {
    const b = fromHex('0a 01 61  48 05  51 0102030405060708  5a 02 6869  65 01020304  0a 06 737464657272');
    expect(decodeLogEntry(b).source).toBe('stderr');
  });

  it.each([
    ['a wrong wire type for source', '08 01'],
    ['a length past the record', '1a 05 6869'],
    ['a varint that runs out', '10 ff ff'],
    ['a varint past 64 bits', '10 ffffffffffffffffffff01'],
    ['tag 0', '00 01'],
    ['a group', '0b'],
  ])('%s is LOG_RECORD_INVALID', (_what, h) => {
    expect(() => decodeLogEntry(fromHex(h))).toThrow(LogEntryError);
  });
});

async function collect<T>(g: AsyncIterable<T[]>): Promise<T[]> {
  const out: T[] = [];
  for await (const batch of g) out.push(...batch);
  return out;
}

function* byteAtATime(b: Uint8Array): Generator<Uint8Array> {
  for (let i = 0; i < b.length; i++) yield b.subarray(i, i + 1);
}

describe('streaming: frames and lines, whatever the chunking', () => {
  const recs = [0, 1, 2].map((i) =>
    frame(encodeLogEntry({ source: 'stdout', timeNano: BigInt(i), line: enc.encode(`line ${i}`), partial: false, partialMeta: undefined })),
  );
  const all = Uint8Array.from(recs.flatMap((r) => [...r]));

  it('frames fed one byte at a time equal frames fed whole', async () => {
    const whole = await collect(frames([all]));
    const bytewise = await collect(frames(byteAtATime(all)));
    expect(bytewise).toEqual(whole);
    expect(whole.map((x) => x.kind)).toEqual(['record', 'record', 'record']);
    expect(whole.map((x) => (x.kind === 'record' ? x.offset : -1))).toEqual([0, recs[0]!.length, recs[0]!.length + recs[1]!.length]);
  });

  it('a file cut inside a frame ends with `truncated`', async () => {
    const cut = all.subarray(0, all.length - 3);
    const items = await collect(frames(byteAtATime(cut)));
    expect(items.map((x) => x.kind)).toEqual(['record', 'record', 'truncated']);
  });

  it('a size word of 2^31 stops the stream before anything is allocated for it', async () => {
    const bad = Uint8Array.from([...all, 0x80, 0, 0, 0, 1, 2, 3]);
    const items = await collect(frames([bad]));
    expect(items.at(-1)).toEqual({ kind: 'too-large', offset: all.length, size: 2 ** 31 });
  });

  it('a footer that differs from the header is flagged', async () => {
    const bad = Uint8Array.from(recs[0]!);
    bad[bad.length - 1]! ^= 1;
    const [it0] = await collect(frames([bad]));
    expect(it0).toMatchObject({ kind: 'record', footerMismatch: true });
  });

  it('lines fed one byte at a time equal lines fed whole; an unterminated tail is marked', async () => {
    const text = enc.encode('a\n\nbc\nlast');
    const whole = await collect(lines([text], 100));
    expect(await collect(lines(byteAtATime(text), 100))).toEqual(whole);
    expect(
      whole.map((l) =>
        l.kind === 'line' ? [Buffer.from(l.bytes).toString(), l.offset, l.terminated] : l.kind === 'blank' ? ['blank', l.offset, l.count] : l.kind,
      ),
    ).toEqual([
      ['a', 0, true],
      ['blank', 2, 1],
      ['bc', 3, true],
      ['last', 6, false],
    ]);
    const blanks = await collect(lines([enc.encode('\n\n\nx\n')], 100));
    expect(blanks).toEqual([
      { kind: 'blank', offset: 0, count: 3 },
      { kind: 'line', offset: 3, bytes: enc.encode('x'), terminated: true },
    ]);
  });

  it('a line past the bound is skipped and reported, the next one read', async () => {
    const text = enc.encode(`${'x'.repeat(50)}\nok\n`);
    const items = await collect(lines(byteAtATime(text), 10, 100));
    expect(items).toEqual([
      { kind: 'too-long', offset: 100, length: 50 },
      { kind: 'line', offset: 151, bytes: enc.encode('ok'), terminated: true },
    ]);
  });
});
