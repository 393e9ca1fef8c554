// A map that also answers its keys in order (code unit order, like a range read of LMDB string
// keys): records by prefix. Keys arriving in order are appended; one out of order marks the key
// list unsorted and the next ordered read sorts it (nearly sorted input: about linear).

export class OrderedMap<V> {
  private readonly map = new Map<string, V>();
  private keys: string[] = [];
  private sorted = true;

  get size(): number {
    return this.map.size;
  }

  get(key: string): V | undefined {
    return this.map.get(key);
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  set(key: string, value: V): void {
    if (!this.map.has(key)) {
      const last = this.keys[this.keys.length - 1];
      if (last !== undefined && key < last) this.sorted = false;
      this.keys.push(key);
    }
    this.map.set(key, value);
  }

  delete(key: string): boolean {
    if (!this.map.delete(key)) return false;
    this.sortKeys();
    const i = this.lowerBound(key);
    if (this.keys[i] === key) this.keys.splice(i, 1);
    return true;
  }

  /** Values whose key starts with `prefix`, in key order. */
  withPrefix(prefix: string): V[] {
    const out: V[] = [];
    for (const k of this.keysWithPrefix(prefix)) out.push(this.map.get(k)!);
    return out;
  }

  hasPrefix(prefix: string): boolean {
    this.sortKeys();
    const k = this.keys[this.lowerBound(prefix)];
    return k?.startsWith(prefix) === true;
  }

  *keysWithPrefix(prefix: string): Generator<string> {
    this.sortKeys();
    for (let i = this.lowerBound(prefix); i < this.keys.length && this.keys[i].startsWith(prefix); i++) {
      yield this.keys[i];
    }
  }

  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }

  private sortKeys(): void {
    if (this.sorted) return;
    this.keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.sorted = true;
  }

  /** The first index whose key is >= `key`. */
  private lowerBound(key: string): number {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.keys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
