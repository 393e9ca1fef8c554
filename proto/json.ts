// Request-body JSON. Strict JSON.parse first; if that fails, one retry that accepts raw control
// characters (U+0000-U+001F) inside strings, as Python's json.loads(strict=False) does. The brief's
// own curl flow needs it: it pastes `$(cat public.pem)`, with its raw newlines, into a JSON string.
// Nothing else is relaxed: other invalid JSON is still refused.

const ESCAPES: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };

/** Escape raw control characters that stand inside JSON strings; everything else is kept. */
export function escapeControlCharsInStrings(text: string): string {
  let out = '';
  let from = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      else if (c < 0x20) {
        out += text.slice(from, i) + (ESCAPES[c] ?? '\\u' + c.toString(16).padStart(4, '0'));
        from = i + 1;
      }
    } else if (c === 0x22) {
      inString = true;
    }
  }
  return from === 0 ? text : out + text.slice(from);
}

/** Deepest nesting a request may have. Hashing and size checks recurse; this bounds them. */
export const MAX_JSON_DEPTH = 64;

/** True when arrays/objects nest deeper than `max` levels (checked without recursion). */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * True when the JSON text opens more than `max` arrays/objects at once: one linear pass over the
 * characters, no allocation, so a hostile body is refused in O(n) before JSON.parse spends time
 * (and stack) on it. Brackets inside strings do not count; a backslash escapes the next character;
 * raw control characters in strings are skipped like any other. For text JSON.parse accepts (also
 * after the control-character leniency) the verdict equals `nestsDeeperThan(JSON.parse(text), max)`.
 */
export function textNestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = closingQuote(text, i + 1);
      if (i < 0) return false;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Index of the quote that ends the string whose content starts at `from`, or -1 (unterminated). */
function closingQuote(text: string, from: number): number {
  for (let q = text.indexOf('"', from); q >= 0; q = text.indexOf('"', q + 1)) {
    // Escaped when an odd number of backslashes stands right before it. Each backslash is looked at
    // once: the walk never goes back past the previous quote.
    let backslashes = 0;
    while (text.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return -1;
}

export type JsonParseResult = { ok: true; value: unknown } | { ok: false; error: string; tooDeep?: true };

function parseLenient(text: string): JsonParseResult {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (first) {
    const relaxed = escapeControlCharsInStrings(text);
    if (relaxed !== text) {
      try {
        return { ok: true, value: JSON.parse(relaxed) };
      } catch {
        // fall through to the original error
      }
    }
    return { ok: false, error: first instanceof SyntaxError ? first.message : 'nesting too deep' };
  }
}

/**
 * Parse a request body; refuses text nested deeper than MAX_JSON_DEPTH before parsing it (the scan
 * is linear and cheap; JSON.parse of a 540k-deep array costs ~0.2 s of CPU, see textNestsDeeperThan).
 */
export function parseJsonBody(text: string): JsonParseResult {
  if (textNestsDeeperThan(text, MAX_JSON_DEPTH))
    return { ok: false, error: `JSON nests deeper than ${MAX_JSON_DEPTH} levels`, tooDeep: true };
  return parseLenient(text);
}
