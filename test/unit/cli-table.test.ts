// The admin CLI's plain-text tables and durations.
import { describe, expect, it } from 'vitest';
import { duration, fields, table } from '../../src/cli/table.js';

describe('table', () => {
  it('pads columns to the widest cell, shows empty cells as -, booleans as yes/no, no trailing spaces', () => {
    const rows = [
      { id: 'a', n: 10, ok: true, note: null },
      { id: 'longer-id', n: 2, ok: false, note: 'two\nlines' },
    ];
    const out = table(rows, [
      { header: 'ID', cell: (r) => r.id },
      { header: 'N', cell: (r) => r.n },
      { header: 'OK', cell: (r) => r.ok },
      { header: 'NOTE', cell: (r) => r.note },
    ]);
    expect(out).toBe('ID         N   OK   NOTE\na          10  yes  -\nlonger-id  2   no   two lines\n');
  });

  it('fields: keys padded to the longest', () => {
    expect(
      fields([
        ['id', 'x'],
        ['queue depth', 0],
      ]),
    ).toBe('id:          x\nqueue depth: 0\n');
  });

  it('duration: two largest units', () => {
    expect([0, 59, 60, 90, 3600, 3661, 86_400 * 3 + 7200, null].map(duration)).toEqual([
      '0s',
      '59s',
      '1m',
      '1m 30s',
      '1h',
      '1h 1m',
      '3d 2h',
      '-',
    ]);
  });
});
