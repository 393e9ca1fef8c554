// Prompt-injection patterns in text files: phrases that try to take over the agent that reads the
// file. A hit marks the file `suspicious` (held for a human), it does not reject it.

/** Text read for patterns; attachments are at most 25 MiB, so this is the whole of any file. */
export const MAX_TEXT_SCAN_BYTES = 25 * 1024 * 1024;

/**
 * Each pattern matches at most OVERLAP_CHARS characters (bounded repeats only), so a match that
 * straddles two chunks is whole in the window `tail of the previous chunk + this chunk`.
 */
const OVERLAP_CHARS = 256;

export const INJECTION_PATTERNS: readonly { name: string; re: RegExp }[] = [
  {
    name: 'ignore_previous_instructions',
    re: /\bignore\s{1,5}(?:all\s{1,5}|any\s{1,5})?(?:of\s{1,5})?(?:the\s{1,5}|your\s{1,5})?(?:previous|prior|above|earlier|preceding)\s{1,5}(?:instructions|prompts?|directions|rules)\b/i,
  },
  { name: 'disregard_instructions', re: /\bdisregard\b[^.\n]{0,60}?\b(?:instructions|prompts?|rules|guidelines)\b/i },
  {
    name: 'forget_instructions',
    re: /\bforget\s{1,5}(?:all\s{1,5}|everything\s{1,5})?(?:your|the|previous|prior)\s{1,5}(?:previous\s{1,5}|prior\s{1,5})?(?:instructions|rules)\b/i,
  },
  { name: 'you_are_now', re: /\byou\s{1,5}are\s{1,5}now\b/i },
  { name: 'system_prompt', re: /\bsystem\s{1,5}prompt\b/i },
  { name: 'new_instructions', re: /\bnew\s{1,5}instructions\s{0,5}:/i },
  { name: 'begin_system', re: /\bbegin\s{1,5}system\b|\bend\s{1,5}of\s{1,5}system\s{1,5}prompt\b/i },
  {
    name: 'chat_template_token',
    re: /<\|(?:im_start|im_end|system|endoftext|start_header_id)\|>|<<\s?sys\s?>>|\[inst\]/i,
  },
];

/** Feeds decoded text chunk by chunk; remembers which patterns were seen anywhere. */
export class InjectionScanner {
  private tail = '';
  private readonly hits = new Set<string>();

  push(text: string): void {
    const window = this.tail + text;
    for (const p of INJECTION_PATTERNS) if (!this.hits.has(p.name) && p.re.test(window)) this.hits.add(p.name);
    this.tail = window.slice(-OVERLAP_CHARS);
  }

  /** Pattern names found, in the order of INJECTION_PATTERNS. */
  found(): string[] {
    return INJECTION_PATTERNS.map((p) => p.name).filter((n) => this.hits.has(n));
  }
}
