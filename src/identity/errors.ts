// AID errors (agent-identity §15): every body carries both shapes clients read, the OAuth one and
// the JSON:API one.

export class AidError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
    this.name = 'AidError';
  }

  body(): Record<string, unknown> {
    return {
      error: this.code,
      error_description: this.description,
      errors: [{ status: String(this.status), code: this.code, detail: this.description }],
    };
  }
}
