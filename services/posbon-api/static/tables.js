// @ts-check
// Data tables: a caption, column headers that sort on a click, numbers
// right-aligned, missing values shown as such.

import { el } from './dom.js';
import { fmtNum } from './format.js';
import { t } from './i18n.js';

/**
 * A column of a table.
 * @typedef {object} Column
 * @property {string | number} key the row's field (or array index)
 * @property {string} label the header, for people
 * @property {boolean} [num] a number: right-aligned, formatted, sorted highest first
 * @property {string} [type] a type shown under the label (SQL results)
 * @property {(row: any) => unknown} [get] the value, when it is not `row[key]`
 * @property {(value: any, row: any) => (Node | string)} [fmt] how a value shows
 * @property {(row: any) => (Node | string)} [fmtMissing] how a missing value shows
 */

/**
 * A table: columns, rows (objects or arrays), sortable by clicking a header.
 * @param {{ caption?: string, columns: Column[], rows: any[], empty?: string, sortable?: boolean }} spec
 * @returns {HTMLElement} a `div.table-wrap` with the table (or the `empty` note)
 */
export function table({ caption, columns, rows, empty, sortable = true }) {
  const wrap = el('div', { class: 'table-wrap' });
  const tbl = el('table', { class: 'data' });
  if (caption) tbl.append(el('caption', { text: caption }));
  if (!rows.length) {
    wrap.append(tbl, el('p', { class: 'muted', text: empty || t('page.no_rows') }));
    return wrap;
  }
  let order = rows.map((r, i) => i);
  /** @type {number | null} */
  let sortBy = null;
  let desc = false;
  /** @param {any} r @param {Column} c */
  const value = (r, c) => (typeof c.get === 'function' ? c.get(r) : r[c.key]);
  const head = el('tr');
  const tbody = el('tbody');
  const draw = () => {
    tbody.replaceChildren(...order.map((i) => {
      const r = rows[i];
      return el('tr', {}, columns.map((c) => {
        const v = value(r, c);
        if (v === null || v === undefined) {
          // A column that says what its missing values mean (zCell: "not
          // enough history") is asked; others show null.
          if (c.fmtMissing) return el('td', { class: 'null' }, c.fmtMissing(r));
          return el('td', { class: 'null', text: c.fmt ? '—' : 'null' });
        }
        const shown = c.fmt ? c.fmt(v, r) : (c.num ? fmtNum(v) : (typeof v === 'object' ? JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() : x)) : String(v)));
        return el('td', { class: c.num ? 'num' : '' }, shown);
      }));
    }));
  };
  columns.forEach((c, ci) => {
    const label = [c.label, c.type ? el('span', { class: 'type', text: c.type }) : null];
    if (!sortable) {
      head.append(el('th', { scope: 'col', class: c.num ? 'num' : '' }, label));
      return;
    }
    const th = el('th', { scope: 'col', 'aria-sort': 'none', class: c.num ? 'num' : '' });
    th.append(el('button', {
      type: 'button',
      title: t('page.sort_by', { column: c.label }),
      onclick: () => {
        desc = sortBy === ci ? !desc : Boolean(c.num);
        sortBy = ci;
        /** @param {unknown} v */
        const missing = (v) => v === null || v === undefined;
        /** @param {number} a @param {number} b */
        const cmp = (a, b) => {
          const x = /** @type {any} */ (value(rows[a], c));
          const y = /** @type {any} */ (value(rows[b], c));
          if (x === y) return 0;
          if (typeof x === 'number' || typeof x === 'bigint') return x < y ? -1 : 1;
          return String(x).localeCompare(String(y));
        };
        // Missing values (a withheld z score, a NULL) last either way.
        /** @param {number} a @param {number} b */
        const ordered = (a, b) => {
          const ma = missing(value(rows[a], c));
          const mb = missing(value(rows[b], c));
          if (ma || mb) return ma === mb ? 0 : (ma ? 1 : -1);
          return desc ? -cmp(a, b) : cmp(a, b);
        };
        order = rows.map((r, i) => i).sort(ordered);
        for (const h of head.children) h.setAttribute('aria-sort', 'none');
        th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
        draw();
      },
    }, label));
    head.append(th);
  });
  tbl.append(el('thead', {}, head), tbody);
  draw();
  wrap.append(tbl);
  return wrap;
}
