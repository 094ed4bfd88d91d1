import { parseRFC3339, ZERO_INSTANT, type Instant } from '../docker/timestamp.js';

/**
 * One line of the json-file log driver (`containers/<id>/<id>-json.log`):
 * `{"log":"…","stream":"stdout","attrs":{…},"time":"2006-01-02T15:04:05.999999999Z"}`.
 *
 * Decoded as dockerd's encoding/json decodes it into jsonlog.JSONLog, so that the bytes printed are
 * the bytes `docker logs` prints: keys matched case-insensitively (the last occurrence wins),
 * `null` leaves a field unset, escapes decoded as Go decodes them (a lone surrogate becomes
 * U+FFFD), raw bytes that are not UTF-8 become U+FFFD one byte at a time, a value of the wrong
 * type makes the whole line unusable. Pure: bytes in, a value or a coded failure out.
 */
export interface JsonLogLine {
  /** The `log` field's bytes, as docker prints them. */
  log: Uint8Array;
  stream: string;
  /** `time`, with the zone it was written in; Go's zero time when absent or null. */
  time: Instant;
  /** `attrs` (labels, env, tag), in the order of the line; a repeated key keeps its last value. */
  attrs: [string, string][];
}

export type JsonLogResult = { ok: true; line: JsonLogLine } | { ok: false; code: 'LOG_LINE_SYNTAX' | 'LOG_LINE_TYPE'; message: string; at: number };

/** Go's limit on nesting while it scans a value. */
const MAX_DEPTH = 10000;

class Fail {
  constructor(
    readonly code: 'LOG_LINE_SYNTAX' | 'LOG_LINE_TYPE',
    readonly message: string,
    readonly at: number,
  ) {}
}

const TD = new TextDecoder('utf-8');

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** Length of the valid UTF-8 sequence at i (Go's utf8.DecodeRune), or 0 when the byte starts none. */
export function utf8SeqLen(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** Appends a code point as UTF-8. */
function putRune(out: number[], r: number): void {
  if (r < 0x80) out.push(r);
  else if (r < 0x800) out.push(0xc0 | (r >> 6), 0x80 | (r & 0x3f));
  else if (r < 0x10000) out.push(0xe0 | (r >> 12), 0x80 | ((r >> 6) & 0x3f), 0x80 | (r & 0x3f));
  else out.push(0xf0 | (r >> 18), 0x80 | ((r >> 12) & 0x3f), 0x80 | ((r >> 6) & 0x3f), 0x80 | (r & 0x3f));
}

function hex4(b: Uint8Array, i: number): number {
  let v = 0;
  for (let k = 0; k < 4; k++) {
    const c = b[i + k];
    if (c === undefined) return -1;
    const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  return v;
}

/** Go's key folding for struct fields (ASCII case, and ſ and K, which fold to s and k). */
function foldKey(k: string): string {
  return k
    .toLowerCase()
    .replace(/ſ/g, 's')
    .replace(/\u212a/g, 'k');
}

class Parser {
  i = 0;
  constructor(readonly b: Uint8Array) {}

  ws(): void {
    while (isWs(this.b[this.i])) this.i++;
  }

  expect(c: number, what: string): void {
    if (this.b[this.i] !== c) throw this.syntax(`expected ${what}`);
    this.i++;
  }

  syntax(msg: string): Fail {
    const c = this.b[this.i];
    return new Fail('LOG_LINE_SYNTAX', `${msg} at byte ${this.i}${c === undefined ? ' (end of line)' : ''}`, this.i);
  }

  /** A JSON string (the cursor on its quote) as the bytes Go's decoder produces. */
  string(): Uint8Array {
    const b = this.b;
    this.expect(0x22, 'a string');
    const start = this.i;
    // Fast path: no escape and nothing to replace.
    let j = start;
    for (;;) {
      const c = b[j];
      if (c === undefined) break;
      if (c === 0x22) {
        this.i = j + 1;
        return b.subarray(start, j);
      }
      if (c === 0x5c || c < 0x20) break;
      if (c < 0x80) {
        j++;
        continue;
      }
      const n = utf8SeqLen(b, j);
      if (n === 0) break;
      j += n;
    }
    const out: number[] = [];
    for (let k = start; k < j; k++) out.push(b[k]!);
    let i = j;
    for (;;) {
      const c = b[i];
      if (c === undefined) {
        this.i = i;
        throw this.syntax('unterminated string');
      }
      if (c === 0x22) break;
      if (c < 0x20) {
        this.i = i;
        throw this.syntax('control character in string');
      }
      if (c === 0x5c) {
        const e = b[i + 1];
        const simple: Record<number, number> = { 0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09 };
        if (e !== undefined && simple[e] !== undefined) {
          out.push(simple[e]);
          i += 2;
          continue;
        }
        if (e !== 0x75) {
          this.i = i + 1;
          throw this.syntax('invalid escape');
        }
        let r = hex4(b, i + 2);
        if (r < 0) {
          this.i = i + 2;
          throw this.syntax('invalid \\u escape');
        }
        i += 6;
        if (r >= 0xd800 && r < 0xe000) {
          // A surrogate: combined with a following low surrogate, else U+FFFD (the next escape stays).
          const lo = b[i] === 0x5c && b[i + 1] === 0x75 ? hex4(b, i + 2) : -1;
          if (r < 0xdc00 && lo >= 0xdc00 && lo < 0xe000) {
            r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
          } else r = 0xfffd;
        }
        putRune(out, r);
        continue;
      }
      if (c < 0x80) {
        out.push(c);
        i++;
        continue;
      }
      const n = utf8SeqLen(b, i);
      if (n === 0) {
        out.push(0xef, 0xbf, 0xbd);
        i++;
      } else {
        for (let k = 0; k < n; k++) out.push(b[i + k]!);
        i += n;
      }
    }
    this.i = i + 1;
    return Uint8Array.from(out);
  }

  /** Skips any JSON value, checking its syntax; iterative, depth bounded as Go bounds it. */
  skipValue(): void {
    const stack: number[] = [];
    for (;;) {
      this.ws();
      const c = this.b[this.i];
      if (c === 0x7b || c === 0x5b) {
        if (stack.length >= MAX_DEPTH) throw this.syntax('exceeded max depth');
        stack.push(c);
        this.i++;
        this.ws();
        const close = c === 0x7b ? 0x7d : 0x5d;
        if (this.b[this.i] === close) {
          this.i++;
          stack.pop();
        } else {
          if (c === 0x7b) this.memberName();
          continue;
        }
      } else if (c === 0x22) this.string();
      else this.scalar();
      // After a value: close containers, or a comma and the next member.
      for (;;) {
        if (stack.length === 0) return;
        this.ws();
        const top = stack[stack.length - 1]!;
        const d = this.b[this.i];
        if (d === 0x2c) {
          this.i++;
          if (top === 0x7b) this.memberName();
          break;
        }
        if (d === (top === 0x7b ? 0x7d : 0x5d)) {
          this.i++;
          stack.pop();
          continue;
        }
        throw this.syntax(top === 0x7b ? "expected ',' or '}'" : "expected ',' or ']'");
      }
    }
  }

  /** A number or literal; returns its text. */
  scalar(): string {
    const rest = this.b.subarray(this.i, Math.min(this.b.length, this.i + 400));
    const text = TD.decode(rest);
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text);
    if (m === null) throw this.syntax('invalid value');
    // A number longer than the window is still scanned to its end.
    let len = m[0].length;
    if (len === text.length && /\d$/.test(m[0])) while (this.b[this.i + len] !== undefined && /[0-9]/.test(String.fromCharCode(this.b[this.i + len]!))) len++;
    this.i += len;
    return m[0];
  }

  /** An object member's name and its colon, with the blanks around them (the cursor before the name). */
  memberName(): Uint8Array {
    this.ws();
    const name = this.string();
    this.ws();
    this.expect(0x3a, "':'");
    this.ws();
    return name;
  }

  /** After an object member: true past a comma (another member follows), false past the closing brace. */
  moreMembers(): boolean {
    this.ws();
    if (this.b[this.i] === 0x2c) {
      this.i++;
      return true;
    }
    this.expect(0x7d, "',' or '}'");
    return false;
  }

  /** A string or null (null: undefined); another type is a type failure after the value is skipped. */
  stringOrNull(field: string): Uint8Array | undefined | Fail {
    const c = this.b[this.i];
    if (c === 0x22) return this.string();
    const at = this.i;
    if (c === 0x6e && this.scalar() === 'null') return undefined;
    this.i = at;
    this.skipValue();
    return new Fail('LOG_LINE_TYPE', `"${field}" is not a string (byte ${at})`, at);
  }
}

/** Decodes one line (without its newline). */
export function decodeJsonLogLine(b: Uint8Array): JsonLogResult {
  const p = new Parser(b);
  let log: Uint8Array = new Uint8Array(0);
  let stream = '';
  let time: Instant = ZERO_INSTANT;
  let attrs: Map<string, string> | undefined;
  let typeFail: Fail | undefined;
  try {
    p.ws();
    p.expect(0x7b, "'{'");
    p.ws();
    if (b[p.i] === 0x7d) p.i++;
    else {
      do {
        const key = foldKey(TD.decode(p.memberName()));
        switch (key) {
          case 'log': {
            const v = p.stringOrNull('log');
            if (v instanceof Fail) typeFail ??= v;
            else if (v !== undefined) log = v;
            break;
          }
          case 'stream': {
            const v = p.stringOrNull('stream');
            if (v instanceof Fail) typeFail ??= v;
            else if (v !== undefined) stream = TD.decode(v);
            break;
          }
          case 'time': {
            const at = p.i;
            const v = p.stringOrNull('time');
            if (v instanceof Fail) typeFail ??= v;
            else if (v !== undefined) {
              const t = parseRFC3339(TD.decode(v));
              if (t === undefined) typeFail ??= new Fail('LOG_LINE_TYPE', `"time" is not an RFC 3339 time (byte ${at})`, at);
              else time = t;
            }
            break;
          }
          case 'attrs': {
            const at = p.i;
            const c = b[p.i];
            if (c === 0x6e && p.scalar() === 'null') {
              attrs = undefined;
              break;
            }
            p.i = at;
            if (c !== 0x7b) {
              p.skipValue();
              typeFail ??= new Fail('LOG_LINE_TYPE', `"attrs" is not an object (byte ${at})`, at);
              break;
            }
            // map[string]string: Go decodes into the existing map (entries accumulate).
            attrs ??= new Map();
            p.i++;
            p.ws();
            if (b[p.i] === 0x7d) {
              p.i++;
              break;
            }
            do {
              const k = TD.decode(p.memberName());
              const v = p.stringOrNull(`attrs.${k}`);
              if (v instanceof Fail) typeFail ??= v;
              else attrs.set(k, v === undefined ? '' : TD.decode(v));
            } while (p.moreMembers());
            break;
          }
          default:
            p.skipValue();
        }
      } while (p.moreMembers());
    }
    p.ws();
    if (p.i !== b.length) throw p.syntax('text after the object');
  } catch (e) {
    if (e instanceof Fail) return { ok: false, code: e.code, message: e.message, at: e.at };
    throw e;
  }
  if (typeFail !== undefined) return { ok: false, code: typeFail.code, message: typeFail.message, at: typeFail.at };
  return { ok: true, line: { log, stream, time, attrs: attrs === undefined ? [] : [...attrs] } };
}
