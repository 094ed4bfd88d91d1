import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildGoProgram } from '../../../test/support/gobolt.js';
import { needs } from '../../../test/support/env.js';
import { goTarHeader, type GoHeader } from './goheader.js';

/**
 * goTarHeader against Go's own archive/tar (the Go that builds dockerd): hand-picked edge cases
 * (a name of exactly 100 bytes, one split into prefix and name, one too long to split, non-ASCII
 * and non-UTF-8 names, long link targets, large ids and sizes, times before 1970 and past 8^11,
 * user names longer than 32, capabilities as xattrs) and 400 random headers must give the same bytes.
 */

const te = new TextEncoder();
const SRC = fileURLToPath(new URL('../../../test/oracle/gotar/main.go', import.meta.url));

function h(name: string | Uint8Array, o: Partial<GoHeader> = {}): GoHeader {
  return {
    name: typeof name === 'string' ? te.encode(name) : name,
    linkname: new Uint8Array(),
    mode: 0o100644,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 1_700_000_000,
    type: 0x30,
    uname: te.encode('root'),
    gname: te.encode('root'),
    devmajor: 0,
    devminor: 0,
    ...o,
  };
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function oracle(cases: GoHeader[]): string[] {
  const bin = buildGoProgram(SRC, 'gotar');
  const input = cases
    .map((c) =>
      JSON.stringify({
        name: b64(c.name),
        linkname: b64(c.linkname),
        mode: c.mode,
        uid: c.uid,
        gid: c.gid,
        size: c.size,
        mtime: c.mtime,
        type: c.type,
        uname: b64(c.uname),
        gname: b64(c.gname),
        devmajor: c.devmajor,
        devminor: c.devminor,
        xattrs: Object.fromEntries([...(c.xattrs ?? [])].map(([k, v]) => [k, b64(v)])),
      }),
    )
    .join('\n');
  const r = spawnSync(bin, [], { input, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trimEnd().split('\n');
}

function rand(n: number): number {
  return Math.floor(Math.random() * n);
}

function randomName(): Uint8Array {
  const parts: number[] = [];
  const len = 1 + rand(rand(2) === 0 ? 120 : 320);
  for (let i = 0; i < len; i++) {
    const r = rand(20);
    parts.push(r === 0 ? 0x2f : r === 1 ? 0x80 + rand(0x80) : 0x61 + rand(26));
  }
  // moby's names are relative, clean, and end in a slash only for directories.
  if (parts[0] === 0x2f) parts[0] = 0x61;
  for (let i = 1; i < parts.length; i++) if (parts[i] === 0x2f && parts[i - 1] === 0x2f) parts[i] = 0x62;
  if (parts[parts.length - 1] === 0x2f) parts[parts.length - 1] = 0x63;
  return Uint8Array.from(parts);
}

describe.runIf(needs('go'))('goTarHeader = Go archive/tar (Format PAX)', () => {
  it('edge cases and random headers give the bytes Go writes', () => {
    const cases: GoHeader[] = [
      h('etc/passwd', { size: 68 }),
      h('bin/', { mode: 0o40755, type: 0x35 }),
      h('a'.repeat(100)),
      h(`${'d'.repeat(90)}/${'f'.repeat(60)}`),
      h(`${'d'.repeat(160)}/${'f'.repeat(20)}`),
      h(`${'x'.repeat(150)}/`, { mode: 0o40755, type: 0x35 }),
      h('dir/grüße.txt'),
      h(Uint8Array.from([0x62, 0xff, 0xfe, 0x2e, 0x74])),
      h('s', { type: 0x32, mode: 0o120777, linkname: te.encode(`/${'t'.repeat(120)}`) }),
      h('s2', { type: 0x32, mode: 0o120777, linkname: te.encode('/pröc/mounts') }),
      h('big', { uid: 2_097_152, gid: 65534, size: 2 ** 33 + 5 }),
      h('old', { mtime: -86400 }),
      h('future', { mtime: 8 ** 11 + 3 }),
      h('u', { uname: te.encode('u'.repeat(33)), gname: te.encode('g') }),
      h('u2', { uname: te.encode('ü'), gname: te.encode('') }),
      h('dev/null', { type: 0x33, mode: 0o20666, devmajor: 1, devminor: 3 }),
      h('dev/loop', { type: 0x34, mode: 0o60660, devmajor: 259, devminor: 1_048_575 }),
      h('opt/ping', {
        mode: 0o104755,
        size: 10,
        xattrs: new Map([['security.capability', Uint8Array.from([1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]]),
      }),
      h(`${'p'.repeat(101)}/`, { mode: 0o40755, type: 0x35, xattrs: new Map([['security.capability', Uint8Array.from([1, 2, 3])]]) }),
      h('hard', { type: 0x31, linkname: te.encode('etc/passwd') }),
      h('fifo', { type: 0x36, mode: 0o10644 }),
    ];
    for (let i = 0; i < 400; i++) {
      const isDir = rand(5) === 0;
      const name = randomName();
      cases.push(
        h(isDir ? Uint8Array.from([...name, 0x2f]) : name, {
          type: isDir ? 0x35 : [0x30, 0x32, 0x31, 0x36][rand(4)]!,
          mode: (isDir ? 0o40000 : 0o100000) | rand(0o7777),
          uid: rand(3) === 0 ? rand(2 ** 31) : rand(70000),
          gid: rand(70000),
          size: rand(3) === 0 ? rand(2 ** 40) : rand(5000),
          mtime: rand(4) === 0 ? -rand(2 ** 33) : rand(2 ** 36),
          linkname: rand(2) === 0 ? randomName() : new Uint8Array(),
          uname: te.encode('n'.repeat(rand(40))),
          gname: rand(6) === 0 ? Uint8Array.from([0xc3, 0xa9]) : te.encode('g'),
          ...(rand(8) === 0 ? { xattrs: new Map([['security.capability', Uint8Array.from({ length: rand(24) }, () => rand(256))]]) } : {}),
        }),
      );
    }
    const want = oracle(cases);
    expect(want.length).toBe(cases.length);
    const got = cases.map((c) => Buffer.from(goTarHeader(c)).toString('hex'));
    for (let i = 0; i < cases.length; i++) expect(got[i], `case ${i}: ${Buffer.from(cases[i]!.name).toString('latin1')}`).toBe(want[i]);
  });
});
