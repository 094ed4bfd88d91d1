import { describe, expect, it } from 'vitest';
import { decodeJsonLogLine, utf8SeqLen } from './jsonlog.js';

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function ok(line: string | Uint8Array) {
  const r = decodeJsonLogLine(typeof line === 'string' ? bytes(line) : line);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.line;
}

describe('json-file lines decoded as dockerd decodes them', () => {
  it('a line dockerd writes (hand-checked)', () => {
    const l = ok('{"log":"hello from dataroot\\n","stream":"stdout","time":"2026-11-25T18:12:56.055487021Z"}');
    expect(Buffer.from(l.log).toString()).toBe('hello from dataroot\n');
    expect(l.stream).toBe('stdout');
    expect(l.time).toEqual({ sec: 1795630376, nsec: 55487021, off: 0 });
    expect(l.attrs).toEqual([]);
  });

  it('escapes: \\u00e9, a surrogate pair, \\u2028, and the HTML escapes dockerd writes', () => {
    const l = ok('{"log":"\\u00e9 \\ud83d\\ude00 \\u2028 \\u003c\\u003e\\u0026 \\"\\\\/\\b\\f\\r\\t","time":"2024-01-01T00:00:00Z"}');
    expect(hex(l.log)).toBe(hex(bytes('é 😀 \u2028 <>& "\\/\b\f\r\t')));
  });

  it('a lone surrogate becomes U+FFFD and the next escape stays (Go)', () => {
    const l = ok('{"log":"a\\ud800\\u0041b","time":"2024-01-01T00:00:00Z"}');
    expect(hex(l.log)).toBe(hex(bytes('a\ufffdAb')));
  });

  it('raw bytes that are not UTF-8 become U+FFFD one byte at a time (Go), not per maximal subpart (WHATWG)', () => {
    const line = Uint8Array.from([...bytes('{"log":"x'), 0xe2, 0x82, 0x41, 0xff, ...bytes('","time":"2024-01-01T00:00:00Z"}')]);
    expect(hex(ok(line).log)).toBe(hex(bytes('x\ufffd\ufffdA\ufffd')));
  });

  it('keys match case-insensitively, the last occurrence wins, null leaves a field unset', () => {
    const l = ok('{"log":"a","LOG":"b","Stream":"stderr","stream":null,"TIME":"2024-01-01T00:00:00.5Z","extra":{"x":[1,2,{"y":null}]}}');
    expect(Buffer.from(l.log).toString()).toBe('b');
    expect(l.stream).toBe('stderr');
    expect(l.time.nsec).toBe(500000000);
  });

  it('attrs: a map of strings, in line order', () => {
    const l = ok('{"log":"x","attrs":{"b":"2","a":"1 2","b":"3"},"time":"2024-01-01T00:00:00Z"}');
    expect(l.attrs).toEqual([
      ['b', '3'],
      ['a', '1 2'],
    ]);
  });

  it('no time: Go zero time', () => {
    expect(ok('{"log":"x"}').time.sec).toBe(-62135596800);
  });

  it.each([
    ['{"log":"x"', 'LOG_LINE_SYNTAX'],
    ['{"log":"x",}', 'LOG_LINE_SYNTAX'],
    ['{"log":"a\tb"}', 'LOG_LINE_SYNTAX'],
    ['{"log":"\\x"}', 'LOG_LINE_SYNTAX'],
    ['{"log":"x"} {"log":"y"}', 'LOG_LINE_SYNTAX'],
    ['[1]', 'LOG_LINE_SYNTAX'],
    ['{"log":5}', 'LOG_LINE_TYPE'],
    ['{"log":"x","time":"yesterday"}', 'LOG_LINE_TYPE'],
    ['{"log":"x","attrs":{"a":1}}', 'LOG_LINE_TYPE'],
    ['{"log":"x","attrs":[]}', 'LOG_LINE_TYPE'],
  ])('%j is %s', (line, code) => {
    const r = decodeJsonLogLine(bytes(line));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe(code);
  });

  it('deep nesting in an unknown field is bounded, not recursed', () => {
    const deep = `{"x":${'['.repeat(20000)}${']'.repeat(20000)},"log":"y"}`;
    const r = decodeJsonLogLine(bytes(deep));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe('LOG_LINE_SYNTAX');
    expect(ok(`{"x":${'['.repeat(500)}${']'.repeat(500)},"log":"y"}`).log.length).toBe(1);
  });

  it('UTF-8 validation follows utf8.DecodeRune (overlongs and surrogates refused)', () => {
    expect(utf8SeqLen(Uint8Array.from([0xc0, 0x80]), 0)).toBe(0);
    expect(utf8SeqLen(Uint8Array.from([0xed, 0xa0, 0x80]), 0)).toBe(0);
    expect(utf8SeqLen(Uint8Array.from([0xf4, 0x90, 0x80, 0x80]), 0)).toBe(0);
    expect(utf8SeqLen(Uint8Array.from([0xf0, 0x9f, 0x98, 0x80]), 0)).toBe(4);
  });
});
