// Server frames, built once and encoded per session: JSON text for `amp.v1`, MessagePack for
// `amp.v1+msgpack`. A `message.new` frame is spliced from the stored JSON of the message, so a
// push to many JSON sessions serialises nothing.

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
