import { describe, expect, it } from 'vitest';
import type { Ctx } from './context.js';
import { detailsPrefix, messageBytes, StreamWriter, tailArg } from './logs.js';

function ctx(tty: boolean): { ctx: Ctx; out: (string | Uint8Array)[]; err: (string | Uint8Array)[] } {
  const out: (string | Uint8Array)[] = [];
  const err: (string | Uint8Array)[] = [];
  return {
    ctx: {
      stdout: { write: (c) => out.push(c) },
      stderr: { write: (c) => err.push(c) },
      color: false,
      stderrTTY: tty,
      stdoutTTY: tty,
      env: {},
      cwd: '/',
      exitCode: 0,
    },
    out,
    err,
  };
}

const rec = {
  stream: 'stdout',
  time: { sec: 1700000000, nsec: 5, off: 0 },
  line: new TextEncoder().encode('hi\n'),
  attrs: [
    ['tag', 'a b'],
    ['env', 'x=y'],
  ] as [string, string][],
  file: 'f',
  offset: 0,
};

describe('what docker logs prints for a message', () => {
  it('-t then --details then the line (attrs sorted, query-escaped; none gives a lone space)', () => {
    expect(Buffer.from(messageBytes(rec, { timestamps: true, details: true })).toString()).toBe('2023-11-14T22:13:20.000000005Z env=x%3Dy,tag=a+b hi\n');
    expect(Buffer.from(messageBytes({ ...rec, attrs: [] }, { timestamps: false, details: true })).toString()).toBe(' hi\n');
    expect(detailsPrefix([])).toBe('');
  });

  it('bytes go out as they are when piped, escaped as text on a terminal', () => {
    const evil = new TextEncoder().encode('\u001b]0;pwned\u0007red\r\n');
    const piped = ctx(false);
    const w = new StreamWriter(piped.ctx);
    w.write('out', evil);
    w.flush();
    expect(Buffer.from(piped.out[0] as Uint8Array).equals(Buffer.from(evil))).toBe(true);
    const term = ctx(true);
    const t = new StreamWriter(term.ctx);
    t.write('err', evil);
    t.flush();
    expect(term.err[0]).toBe('\\033]0;pwned\\ared\\r\n');
  });

  it('keeps the order of the two streams (a batch per run of one stream)', () => {
    const c = ctx(false);
    const w = new StreamWriter(c.ctx);
    const b = (s: string): Uint8Array => new TextEncoder().encode(s);
    w.write('out', b('1'));
    w.write('out', b('2'));
    w.write('err', b('3'));
    w.write('out', b('4'));
    w.flush();
    expect(c.out.map((x) => Buffer.from(x as Uint8Array).toString())).toEqual(['12', '4']);
    expect(c.err.map((x) => Buffer.from(x as Uint8Array).toString())).toEqual(['3']);
  });

  it('--tail: all, a number, negative as all; anything else refused', () => {
    expect(tailArg('all')).toBe(-1);
    expect(tailArg('12')).toBe(12);
    expect(tailArg('-3')).toBe(-1);
    expect(() => tailArg('ten')).toThrow();
  });
});
