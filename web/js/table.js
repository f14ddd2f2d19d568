// A sortable, filterable table. Shows at most `pageSize` rows at a time ("Show more"), so a
// cache of twenty thousand files stays responsive on a phone.

import { h, replace } from "./dom.js";

/**
 * columns: [{ key, label, num?, sort?: row => value (default row[key]), render?: row => node|text,
 *             cls?, narrow?: false (hidden on phones), title? }]
 * opts: { label (accessible name), rowKey: row => string, empty: text, filter: (row, q) => bool,
 *         initialSort: { key, dir: 1|-1 }, pageSize, rowClass: row => string,
 *         tall: scroll inside (header stays visible) instead of growing the page,
 *         stackNarrow: false to keep a wide table on phones (default: one labelled block per row) }
 */
export class DataTable {
  constructor(columns, opts = {}) {
    this.columns = columns;
    this.opts = opts;
    this.rows = [];
    this.query = "";
    this.extraFilter = null;
    this.sort = opts.initialSort ?? null;
    this.limit = opts.pageSize ?? 300;
    this.tbody = h("tbody");
    this.head = h("tr");
    this.foot = h("div", { class: "more" });
    this.table = h("table", { "aria-label": opts.label, class: opts.stackNarrow === false ? null : "stack-narrow" }, h("thead", null, this.head), this.tbody);
    this.el = h("div", null, h("div", { class: "table-wrap" + (opts.tall ? " tall" : "") }, this.table), this.foot);
    this.renderHead();
  }

  renderHead() {
    replace(this.head, this.columns.map((c) => {
      const th = h("th", { scope: "col", class: (c.num ? "num " : "") + (c.narrow === false ? "hide-narrow" : ""), title: c.title });
      if (c.sortable === false || !c.label) {
        th.append(c.label ?? "");
        return th;
      }
      const active = this.sort?.key === c.key;
      th.setAttribute("aria-sort", active ? (this.sort.dir > 0 ? "ascending" : "descending") : "none");
      th.append(h("button", {
        type: "button", class: "sort",
        onclick: () => {
          const dir = this.sort?.key === c.key ? -this.sort.dir : (c.num ? -1 : 1);
          this.sort = { key: c.key, dir };
          this.renderHead();
          this.render();
        },
      }, c.label));
      return th;
    }));
  }

  setRows(rows) {
    this.rows = rows;
    this.render();
  }

  setQuery(q) {
    this.query = q.trim().toLowerCase();
    this.limit = this.opts.pageSize ?? 300;
    this.render();
  }

  /** An extra predicate (e.g. a kind selector), or null. */
  setFilter(fn) {
    this.extraFilter = fn;
    this.limit = this.opts.pageSize ?? 300;
    this.render();
  }

  visible() {
    const q = this.query;
    let rows = this.rows;
    if (this.extraFilter) rows = rows.filter(this.extraFilter);
    if (q) rows = rows.filter((r) => (this.opts.filter ? this.opts.filter(r, q) : JSON.stringify(r).toLowerCase().includes(q)));
    if (this.sort) {
      const c = this.columns.find((c) => c.key === this.sort.key);
      const get = c?.sort ?? ((r) => r[this.sort.key]);
      const dir = this.sort.dir;
      rows = rows.map((r) => [get(r), r]).sort((a, b) => (a[0] == null || b[0] == null ? cmp(a[0], b[0]) : dir * cmp(a[0], b[0]))).map((x) => x[1]);
    }
    return rows;
  }

  render() {
    const rows = this.visible();
    const shown = rows.slice(0, this.limit);
    const trs = shown.map((r) => {
      const tr = h("tr", { class: this.opts.rowClass?.(r) ?? null, dataset: this.opts.rowKey ? { key: this.opts.rowKey(r) } : null });
      for (const c of this.columns) {
        const v = c.render ? c.render(r) : r[c.key];
        tr.append(h("td", { "data-label": c.label ?? "", class: [c.num ? "num" : "", c.cls ?? "", c.narrow === false ? "hide-narrow" : ""].join(" ").trim() || null }, Array.isArray(v) ? h("span", null, v) : v ?? ""));
      }
      return tr;
    });
    if (!trs.length) {
      trs.push(h("tr", null, h("td", { class: "empty", colspan: this.columns.length },
        this.rows.length ? "nothing matches the filter" : (this.opts.empty ?? "nothing here"))));
    }
    replace(this.tbody, trs);
    const rest = rows.length - shown.length;
    replace(this.foot, rest > 0
      ? [h("span", { class: "mute" }, `${shown.length} of ${rows.length} shown `),
         h("button", { type: "button", class: "btn small ghost", onclick: () => { this.limit += 500; this.render(); } }, `Show ${Math.min(rest, 500)} more`)]
      : []);
    this.opts.onRender?.(rows);
  }
}

function cmp(a, b) {
  if (a == null && b == null) return 0;
  if (a == null) return 1;
  if (b == null) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), "en", { numeric: true, sensitivity: "base" });
}
