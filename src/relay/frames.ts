// Server frames, built once and encoded per session: JSON text for `amp.v1`, MessagePack for
// `amp.v1+msgpack`. A `message.new` frame is spliced from the stored JSON of the message, so a
// push to many JSON sessions serialises nothing.

import { isoTime, packFrame } from '../../proto/index.js';

export class Frame {
  private obj?: Record<string, unknown>;
  private text?: string;

  constructor(obj?: Record<string, unknown>, text?: string) {
    this.obj = obj;
    this.text = text;
  }

  get json(): string {
    return (this.text ??= JSON.stringify(this.obj));
  }

  get object(): Record<string, unknown> {
    return (this.obj ??= JSON.parse(this.text!) as Record<string, unknown>);
  }
}

/** `{"type":"message.new"[,"replay":true],"data":<stored message JSON>}` */
export function messageFrame(messageJson: string, replay: boolean): Frame {
  return new Frame(
    undefined,
    (replay ? '{"type":"message.new","replay":true,"data":' : '{"type":"message.new","data":') + messageJson + '}',
  );
}

/** The `pong` answer to a client `ping` frame. */
export function pongFrame(request_id?: string): Frame {
  const f: Record<string, unknown> = { type: 'pong', timestamp: isoTime(Date.now()) };
  if (request_id !== undefined) f.request_id = request_id;
  return new Frame(f);
}

/** The bytes of a frame for a session's subprotocol: JSON text, or a MessagePack buffer. */
export function encodeFrame(frame: Frame, binary: boolean): string | Buffer {
  return binary ? packFrame(frame.object) : frame.json;
}
