/**
 * An upper estimate of the program a `~=` pattern compiles to, read from its text before it is
 * compiled: RE2 expands a counted repetition into that many copies of its operand, so a 30-byte
 * pattern like `(?:kkkk){1000}` becomes thousands of instructions, and one of a kilobyte can take
 * half a second and a hundred megabytes to compile. The estimate counts one unit a literal, class,
 * escape or operator and multiplies a repeated operand by its largest count, so it errs high
 * (RE2's simplifier folds `a|b` into a class); the compiled program's size is checked afterwards.
 * An invalid pattern gets some estimate and is refused by the compiler.
 */
export function patternExpansion(pattern: string): number {
  /** One unit per item of each open group; `last` is the item a quantifier would repeat. */
  const frames: { total: number; last: number }[] = [{ total: 0, last: 0 }];
  const top = () => frames[frames.length - 1]!;
  const atom = (weight: number) => {
    top().total += weight;
    top().last = weight;
  };
  let i = 0;
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === '\\') {
      const next = pattern[i + 1];
      if (next === 'Q') {
        // literal text up to \E: one unit a character
        const end = pattern.indexOf('\\E', i + 2);
        const stop = end < 0 ? pattern.length : end;
        for (let j = i + 2; j < stop; j++) atom(1);
        i = end < 0 ? pattern.length : end + 2;
        continue;
      }
      i += 2;
      if ((next === 'p' || next === 'P' || next === 'x') && pattern[i] === '{') i = skipPast(pattern, i, '}');
      atom(1);
      continue;
    }
    if (ch === '[') {
      i = classEnd(pattern, i);
      atom(1);
      continue;
    }
    if (ch === '(') {
      frames.push({ total: 2, last: 0 }); // a capture is two instructions
      i++;
      continue;
    }
    if (ch === ')' && frames.length > 1) {
      const group = frames.pop()!;
      atom(group.total);
      i++;
      continue;
    }
    if (ch === '{') {
      const repeat = /^\{(\d+)(?:(,)(\d*))?\}/.exec(pattern.slice(i, i + 24));
      if (repeat) {
        const min = Number(repeat[1]);
        const max = repeat[3] ? Number(repeat[3]) : min;
        // {n,} is n copies and a star, {n,m} up to m copies of two instructions each
        const copies = (Math.max(min, max) + 1) * (repeat[2] ? 2 : 1);
        const frame = top();
        frame.total += frame.last * (copies - 1);
        frame.last *= copies;
        i += repeat[0].length;
        continue;
      }
    }
    // a literal, `.`, an anchor, `|`, or a quantifier `*`, `+`, `?`: one instruction or so each
    atom(1);
    i++;
  }
  // an unclosed group is an error the compiler reports; its items still count
  // and the program its own start and match
  return frames.reduce((sum, f) => sum + f.total, 2);
}

/** The index just past a character class opening at `start` (`[`), as RE2's parser reads one. */
function classEnd(pattern: string, start: number): number {
  let i = start + 1;
  if (pattern[i] === '^') i++;
  if (pattern[i] === ']') i++; // a leading `]` is a literal
  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === ']') return i + 1;
    if (ch === '\\') {
      const next = pattern[i + 1];
      i += 2;
      if ((next === 'p' || next === 'P' || next === 'x') && pattern[i] === '{') i = skipPast(pattern, i, '}');
      continue;
    }
    if (ch === '[' && pattern[i + 1] === ':') {
      const end = pattern.indexOf(':]', i + 2);
      if (end >= 0) {
        i = end + 2;
        continue;
      }
    }
    i++;
  }
  return pattern.length;
}

function skipPast(pattern: string, from: number, char: string): number {
  const end = pattern.indexOf(char, from);
  return end < 0 ? pattern.length : end + 1;
}
