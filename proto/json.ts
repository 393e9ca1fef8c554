// Request-body JSON. Strict JSON.parse first; if that fails, one retry that accepts raw control
// characters (U+0000-U+001F) inside strings, as Python's json.loads(strict=False) does. The brief's
// own curl flow needs it: it pastes `$(cat public.pem)`, with its raw newlines, into a JSON string.
// Nothing else is relaxed: other invalid JSON is still refused.

const ESCAPES: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r' };

/** Escape raw control characters that stand inside JSON strings; everything else is kept. */
export function escapeControlCharsInStrings(text: string): string {
  let out = '';
  let from = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
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

export type JsonParseResult = { ok: true; value: unknown } | { ok: false; error: string };

export function parseJsonBody(text: string): JsonParseResult {
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
