// Waiting on events with a timeout (never a sleep).
import type { EventEmitter } from 'node:events';
import type { QueuedMessage } from '../../proto/index.js';
import type { AmpSocket } from '../../src/client/index.js';

export function waitFor<T extends unknown[]>(
  emitter: EventEmitter<any>,
  event: string,
  predicate: (...args: T) => boolean = () => true,
  timeoutMs = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (...args: T) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve(args);
    };
    emitter.on(event, on);
  });
}

/** Records every pushed message of a socket, and waits until given ids have arrived. */
export class Inbox {
  readonly items: Array<{ msg: QueuedMessage; replay: boolean }> = [];
  private waiters: Array<() => void> = [];

  constructor(socket: AmpSocket) {
    socket.on('message', (msg, { replay }) => {
      this.items.push({ msg, replay });
      for (const w of this.waiters.splice(0)) w();
    });
  }

  ids(): string[] {
    return this.items.map((i) => i.msg.id);
  }

  /** Resolves once every id in `ids` has been pushed at least once. */
  async has(ids: string[], timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ids.every((id) => this.ids().includes(id))) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `messages not pushed within ${timeoutMs} ms: ${ids.filter((id) => !this.ids().includes(id)).join(', ')}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
