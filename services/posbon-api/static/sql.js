// @ts-check
// The SQL console: one read-only statement posted to /v1/sql, the result
// as a table (with the columns' types), errors as the server's message, and
// example queries to start from.

import { $, el } from './dom.js';
import { api, describe } from './api.js';
import { page } from './errors.js';
import { fmtNum } from './format.js';
import { t } from './i18n.js';
import { table } from './tables.js';

// The examples: the message key of each title, and the query (SQL for the
// user to read and change; not translated).
const SQL_EXAMPLES = [
  ['sql.example_events_by_kind',
    "SELECT kind, count(*) AS events\nFROM events\nWHERE occurred_at > now() - INTERVAL '24 hours'\nGROUP BY kind\nORDER BY events DESC"],
  ['sql.example_top_mahallas',
    "SELECT m.name, e.mahalla_id, count(*) AS incidents\nFROM incidents e JOIN mahallas m ON m.mahalla_id = e.mahalla_id\nWHERE e.occurred_at > now() - INTERVAL '7 days'\nGROUP BY m.name, e.mahalla_id\nORDER BY incidents DESC\nLIMIT 20"],
  ['sql.example_open_escalations',
    "SELECT id, mahalla_id, level, rule, status, tier, opened_at\nFROM escalations\nWHERE status IN ('open', 'acknowledged', 'assigned')\nORDER BY opened_at DESC"],
  ['sql.example_drug_handoffs',
    "SELECT occurred_at, mahalla_id, camera_id, confidence\nFROM camera_alerts\nWHERE detection = 'drug_handoff' AND occurred_at > now() - INTERVAL '1 day'\nORDER BY occurred_at DESC\nLIMIT 100"],
  ['sql.example_fraud_by_scheme',
    "SELECT scheme, count(*) AS flags, sum(amount_uzs) AS amount_uzs\nFROM fraud_flags\nWHERE occurred_at > now() - INTERVAL '7 days'\nGROUP BY scheme\nORDER BY flags DESC"],
  ['sql.example_tables', 'SELECT table_name, column_name, data_type\nFROM information_schema.columns\nORDER BY table_name, ordinal_position'],
];

/** Starts the console view (the first time it shows): an example to run. */
export function startSql() {
  if (!$('sql-query').value) $('sql-query').value = SQL_EXAMPLES[0][1];
}

/**
 * Puts `query` into the console and shows it (from the report's mahallas).
 * @param {string} query
 */
export function openQuery(query) {
  $('sql-query').value = query;
  location.hash = '#sql';
}

/** Wires the console: examples, Ctrl+Enter, running a query. */
export function initSql() {
  // For the tests: every example must run.
  page.sqlExamples = SQL_EXAMPLES.map(([key, query]) => ({ label: t(key), query }));
  const examples = $('sql-examples');
  SQL_EXAMPLES.forEach(([key], i) => examples.append(el('option', { value: String(i), text: t(key) })));
  examples.addEventListener('change', () => {
    const ex = SQL_EXAMPLES[Number(examples.value)];
    if (ex) $('sql-query').value = ex[1];
    examples.value = '';
    $('sql-query').focus();
  });
  $('sql-query').addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      $('sql-form').requestSubmit();
    }
  });
  $('sql-form').addEventListener('submit', async (/** @type {SubmitEvent} */ e) => {
    e.preventDefault();
    const query = $('sql-query').value.trim();
    const error = $('sql-error');
    const result = $('sql-result');
    const status = $('sql-status');
    if (!query) {
      error.textContent = t('sql.empty_query');
      error.hidden = false;
      return;
    }
    $('sql-run').disabled = true;
    status.textContent = t('sql.running');
    error.hidden = true;
    const started = performance.now();
    try {
      const { body } = await api('/v1/sql', { method: 'POST', body: JSON.stringify({ query }) });
      /** @type {{ name: string, type: string }[]} */
      const columns = Array.isArray(body.columns) ? body.columns : [];
      const rows = Array.isArray(body.rows) ? body.rows : [];
      const took = body.elapsed_ms !== undefined ? Number(body.elapsed_ms) : performance.now() - started;
      const args = { n: rows.length, ms: fmtNum(took, 1) };
      status.textContent = body.truncated ? t('sql.status_cut', args) : t('sql.status', args);
      result.replaceChildren(table({
        columns: columns.map((c, i) => ({ key: i, label: c.name, type: c.type, num: /INT|FLOAT|DOUBLE|DECIMAL|REAL/i.test(String(c.type)) })),
        rows,
        empty: t('sql.no_rows'),
      }));
      result.firstChild.classList.remove('table-wrap');
      result.dataset.rows = String(rows.length);
    } catch (err) {
      status.textContent = '';
      error.textContent = describe(err);
      error.hidden = false;
      result.replaceChildren();
      delete result.dataset.rows;
    } finally {
      $('sql-run').disabled = false;
    }
  });
}
