// The directory's listing index (spec §7.4): per tenant, its agents ordered by address, so a page
// costs a binary search and the page itself, not the tenant. Held in memory (like the queue index)
// and built once when the store opens, from the `agents` database; putAgent and deleteAgent keep it
// in step synchronously, before their write commits, so no read can miss an agent that a later
// range scan would still be waiting to see.
//
// `total` (all matches) is the tenant's size without `search`; with `search` it needs every entry
// looked at once: a pass over the in-memory strings, remembered per (tenant, search) until the
// tenant changes, so paging through one search costs that pass once.

import type { AgentPage, AgentPageQuery, AgentRecord } from './types.js';

/** What a listing reads of an agent: the address it is ordered by and the fields `search` matches. */
interface Entry {
  address: string;
  id: string;
  name: string;
  /** Lowercased. */
  alias: string;
}

interface TenantEntries {
  /** Ordered by address (code unit order, as the cursor compares). */
  entries: Entry[];
  /** Bumped by every change, so a remembered search total knows it is stale. */
  version: number;
  searchTotal?: { search: string; version: number; total: number };
}

const entryOf = (a: AgentRecord): Entry => ({
  address: a.address,
  id: a.id,
  name: a.name,
  alias: (a.alias ?? '').toLowerCase(),
});

const matches = (e: Entry, search: string, byId = false) =>
  e.name.includes(search) ||
  e.address.includes(search) ||
  e.alias.includes(search) ||
  (byId && e.id.toLowerCase().includes(search));

/** The first index whose address is > `after` (entries.length when none). */
function firstAfter(entries: readonly Entry[], after: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid].address <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class AgentListing {
  private readonly tenants = new Map<string, TenantEntries>();

  /** `all`: every agent, once, at open; `get`: the current record of an id (read per listed agent only). */
  constructor(
    all: Iterable<AgentRecord>,
    private readonly get: (id: string) => AgentRecord | undefined,
  ) {
    for (const a of all) this.tenant(a.tenant).entries.push(entryOf(a));
    for (const t of this.tenants.values()) t.entries.sort((x, y) => (x.address < y.address ? -1 : 1));
  }

  /** Insert or update (the alias may have changed; an address never does). */
  put(a: AgentRecord): void {
    const t = this.tenant(a.tenant);
    const i = firstAfter(t.entries, a.address);
    const e = entryOf(a);
    if (i > 0 && t.entries[i - 1].address === a.address) t.entries[i - 1] = e;
    else t.entries.splice(i, 0, e);
    t.version++;
  }

  remove(a: AgentRecord): void {
    const t = this.tenants.get(a.tenant);
    if (!t) return;
    const i = firstAfter(t.entries, a.address) - 1;
    if (i < 0 || t.entries[i].address !== a.address) return;
    t.entries.splice(i, 1);
    t.version++;
    if (t.entries.length === 0) this.tenants.delete(a.tenant);
  }

  /**
   * Up to `limit` agents with an address after `after`, in address order, matching `search`
   * (lowercase; '' matches all). Reads `limit` + 1 records at most.
   */
  page(tenant: string, q: AgentPageQuery): AgentPage {
    const t = this.tenants.get(tenant);
    if (!t) return { agents: [], total: 0, more: false };
    const start = firstAfter(t.entries, q.after);
    const picked: Entry[] = [];
    let more = false;
    for (let i = start; i < t.entries.length; i++) {
      const e = t.entries[i];
      if (q.search && !matches(e, q.search, q.byId)) continue;
      if (picked.length === q.limit) {
        more = true;
        break;
      }
      picked.push(e);
    }
    const agents: AgentRecord[] = [];
    for (const e of picked) {
      const a = this.get(e.id);
      if (a) agents.push(a);
    }
    return { agents, total: q.search ? this.searchTotal(t, q.search, q.byId === true) : t.entries.length, more };
  }

  private searchTotal(t: TenantEntries, search: string, byId: boolean): number {
    const known = t.searchTotal;
    const key = byId ? `id:${search}` : `s:${search}`;
    if (known && known.search === key && known.version === t.version) return known.total;
    let total = 0;
    for (const e of t.entries) if (matches(e, search, byId)) total++;
    t.searchTotal = { search: key, version: t.version, total };
    return total;
  }

  private tenant(tenant: string): TenantEntries {
    let t = this.tenants.get(tenant);
    if (!t) {
      t = { entries: [], version: 0 };
      this.tenants.set(tenant, t);
    }
    return t;
  }
}
