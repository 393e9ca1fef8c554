// A Server-Sent Events client over fetch for tests: events are parsed as they arrive, and a test
// waits for the first one that matches (with a timeout), never for a guessed time.

export interface SseEvent {
  event: string;
  data: string;
}

export class SseClient {
  readonly events: SseEvent[] = [];
  private waiters: Array<{ pred: (e: SseEvent) => boolean; from: number; resolve: (e: SseEvent) => void }> = [];
  private ended = false;
  private endWaiters: Array<() => void> = [];
  private readonly ac = new AbortController();
  status = 0;
  headers = new Headers();

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const c = new SseClient();
    const res = await fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: c.ac.signal });
    c.status = res.status;
    c.headers = res.headers;
    void c.pump(res.body!.getReader());
    return c;
  }

  private async pump(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let i = buf.indexOf('\n\n');
        while (i >= 0) {
          this.push(buf.slice(0, i));
          buf = buf.slice(i + 2);
          i = buf.indexOf('\n\n');
        }
      }
    } catch {
      // aborted or cut: the stream ended
    }
    this.ended = true;
    for (const w of this.endWaiters.splice(0)) w();
  }

  private push(block: string): void {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
    }
    if (data.length === 0) return;
    const e = { event, data: data.join('\n') };
    this.events.push(e);
    const index = this.events.length - 1;
    this.waiters = this.waiters.filter((w) => {
      if (index < w.from || !w.pred(e)) return true;
      w.resolve(e);
      return false;
    });
  }

  /** The first event (received so far or later) that matches; rejects after `timeoutMs`. */
  next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = 5000, from = 0): Promise<SseEvent> {
    const seen = this.events.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        pred,
        from,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  /** The first snapshot (JSON data) received from event index `from` on that satisfies `pred`. */
  async snapshot(pred: (s: Record<string, any>) => boolean = () => true, timeoutMs = 5000, from = 0) {
    const e = await this.next((ev) => ev.event === 'snapshot' && pred(JSON.parse(ev.data)), timeoutMs, from);
    return JSON.parse(e.data) as Record<string, any>;
  }

  /** Resolves when the server ended the stream; rejects after `timeoutMs`. */
  end(timeoutMs = 5000): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream still open after ${timeoutMs} ms`)), timeoutMs);
      this.endWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.ac.abort();
  }
}
