// Prompt-injection patterns in text files: phrases that try to take over the agent that reads the
// file. A hit marks the file `suspicious` (held for a human), it does not reject it.

/** Text read for patterns; attachments are at most 25 MiB, so this is the whole of any file. */
export const MAX_TEXT_SCAN_BYTES = 25 * 1024 * 1024;

/**
 * Each pattern matches at most OVERLAP_CHARS characters (bounded repeats only), so a match that
 * straddles two chunks is whole in the window `tail of the previous chunk + this chunk`.
 */
const OVERLAP_CHARS = 256;

/** `\s{1,5}`: words apart by a little white space (a bounded repeat, see OVERLAP_CHARS). */
const W = String.raw`\s{1,5}`;
const words = (src: string) => new RegExp(src.replaceAll(' ', W), 'i');

export const INJECTION_PATTERNS: readonly { name: string; re: RegExp }[] = [
  {
    name: 'ignore_previous_instructions',
    re: words(
      String.raw`\bignore (?:(?:all|any) )?(?:of )?(?:the |your )?(?:previous|prior|above|earlier|preceding) ` +
        String.raw`(?:instructions|prompts?|directions|rules)\b`,
    ),
  },
  { name: 'disregard_instructions', re: /\bdisregard\b[^.\n]{0,60}?\b(?:instructions|prompts?|rules|guidelines)\b/i },
  {
    name: 'forget_instructions',
    re: words(
      String.raw`\bforget (?:(?:all|everything) )?(?:your|the|previous|prior) ` +
        String.raw`(?:(?:previous|prior) )?(?:instructions|rules)\b`,
    ),
  },
  { name: 'you_are_now', re: words(String.raw`\byou are now\b`) },
  { name: 'system_prompt', re: words(String.raw`\bsystem prompt\b`) },
  { name: 'new_instructions', re: words(String.raw`\bnew instructions\s{0,5}:`) },
  { name: 'begin_system', re: words(String.raw`\bbegin system\b|\bend of system prompt\b`) },
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
