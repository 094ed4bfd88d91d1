/**
 * Shell patterns as find(1)'s -name and -path take them (fnmatch without FNM_PATHNAME or
 * FNM_PERIOD): `*` any run of characters (a `/` too), `?` one character, `[...]` a set with
 * ranges and `!` or `^` negation, `\` quotes the next character. Compiled once to a RegExp.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '\\' && i + 1 < glob.length) re += escape(glob[++i]!);
    else if (c === '[') {
      const end = classEnd(glob, i);
      if (end < 0) re += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        let neg = false;
        if (body.startsWith('!') || body.startsWith('^')) {
          neg = true;
          body = body.slice(1);
        }
        let cls = '';
        for (let k = 0; k < body.length; k++) {
          const b = body[k]!;
          if (b === '\\' && k + 1 < body.length) cls += escapeClass(body[++k]!);
          else if (b === '-' && k > 0 && k < body.length - 1) cls += '-';
          else cls += escapeClass(b);
        }
        re += `[${neg ? '^' : ''}${cls}]`;
        i = end;
      }
    } else re += escape(c);
  }
  return new RegExp(`^${re}$`, 'u');
}

/** The index of the `]` that closes the class opened at `start`, or -1 (then `[` is literal). */
function classEnd(glob: string, start: number): number {
  let i = start + 1;
  if (glob[i] === '!' || glob[i] === '^') i++;
  if (glob[i] === ']') i++;
  for (; i < glob.length; i++) {
    if (glob[i] === '\\') i++;
    else if (glob[i] === ']') return i;
  }
  return -1;
}

function escape(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}

function escapeClass(c: string): string {
  return /[\]\\^-]/.test(c) ? `\\${c}` : c;
}
