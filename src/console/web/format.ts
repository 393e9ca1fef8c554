// Small text helpers: everything the server sends is shown as text, these only shape it.

/** A rate with one decimal (digits only, no separators). */
export const rate = (x: number | null | undefined) => (typeof x === 'number' ? String(Math.round(x * 10) / 10) : '—');

/** An integer as plain digits. */
export const int = (x: number | null | undefined) => (typeof x === 'number' ? String(Math.round(x)) : '—');

export function ms(x: number | null | undefined): string {
  return typeof x === 'number' ? String(Math.round(x * 100) / 100) : '—';
}

export function bytes(n: unknown): string {
  if (typeof n !== 'number') return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** An ISO time as the browser's local date and time; the ISO text if it does not parse. */
export function when(iso: unknown): string {
  if (typeof iso !== 'string' || !iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export const str = (v: unknown, fallback = '—') => (typeof v === 'string' && v !== '' ? v : fallback);
