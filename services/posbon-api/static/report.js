// @ts-check
// The daily situation report: GET /v1/reports/daily?date=&scope= as cards
// and tables with drill-down (nation → region → district → mahalla), the
// mahallas of a nation or region (GET /v1/reports/daily/mahallas), links to
// the printable and CSV forms, and POST to generate a missing report.

import { $, el } from './dom.js';
import { ApiError, api, describe } from './api.js';
import { TZ, fmtNum, fmtShare, fmtTime, tashkentDate } from './format.js';
import { t, word } from './i18n.js';
import { districtName, mahallaName, names, regionName } from './registry.js';
import { can, session } from './session.js';
import { openQuery } from './sql.js';
import { table } from './tables.js';

/** @typedef {import('./tables.js').Column} Column */

/** The report shown: its scope, and a token that makes older answers stale. */
const report = { scope: 'nation', token: 0 };

/** Fills the scope selector from the registry: nation, regions and their districts. */
export function fillReportScopes() {
  const sel = $('report-scope');
  const keep = sel.value || report.scope;
  const options = [el('option', { value: 'nation', text: t('daily.nation') })];
  for (const [rid, r] of names.regions) {
    const group = el('optgroup', { label: r.name });
    group.append(el('option', { value: `region:${rid}`, text: t('page.scope_region', { name: r.name }) }));
    for (const d of r.districts) group.append(el('option', { value: `district:${d.id}`, text: d.name }));
    options.push(group);
  }
  options.push(el('option', { value: 'unassigned', text: t('daily.outside') }));
  sel.replaceChildren(...options);
  setScopeSelect(keep);
}

/** @param {string} scope */
function setScopeSelect(scope) {
  const sel = $('report-scope');
  if (![...sel.options].some((o) => o.value === scope)) {
    const [kind, id] = scope.split(':');
    const label = kind === 'mahalla' ? t('page.scope_mahalla', { name: mahallaName(id) }) : scope;
    sel.append(el('option', { value: scope, text: label }));
  }
  sel.value = scope;
}

/** @param {string} [format] html or csv; none for the JSON */
function reportUrl(format) {
  const p = new URLSearchParams({ date: $('report-date').value, scope: report.scope });
  if (format) p.set('format', format);
  return `/v1/reports/daily?${p}`;
}

function updateReportLinks() {
  $('report-print').href = reportUrl('html');
  $('report-csv').href = reportUrl('csv');
}

/**
 * Starts the report view (the first time it shows): the dates with a
 * report, and the latest of them.
 * @returns {Promise<void>}
 */
export async function startReport() {
  $('report-date').value = tashkentDate(-1);
  // A user limited to a scope starts on (the first of) it, not on the nation.
  const own = session.user?.scope?.[0];
  if (own && report.scope === 'nation') {
    report.scope = own;
    setScopeSelect(own);
  }
  $('report-form').addEventListener('submit', (/** @type {SubmitEvent} */ e) => {
    e.preventDefault();
    report.scope = $('report-scope').value || 'nation';
    loadReport();
  });
  $('report-scope').addEventListener('change', () => {
    report.scope = $('report-scope').value || 'nation';
    loadReport();
  });
  $('report-date').addEventListener('change', () => loadReport());
  $('report-generate').addEventListener('click', generateReport);
  try {
    const { body } = await api('/v1/reports/daily/dates');
    /** @type {string[]} */
    const dates = Array.isArray(body?.dates) ? [...body.dates].sort().reverse() : [];
    if (dates.length) $('report-date').value = dates[0];
    let note;
    if (dates.length) note = t('daily.reports_label');
    else note = can('generate_reports') ? t('daily.no_reports_generate') : t('daily.no_reports');
    $('report-dates').replaceChildren(
      el('span', { class: 'muted', text: note }),
      ...dates.slice(0, 21).map((d) => el('button', {
        type: 'button', onclick: () => { $('report-date').value = d; loadReport(); },
      }, d)));
  } catch (e) {
    $('report-dates').replaceChildren(el('span', { class: 'muted', text: t('daily.dates_failed', { reason: describe(e) }) }));
  }
  loadReport();
}

async function generateReport() {
  const date = $('report-date').value;
  if (!date) return;
  const status = $('report-status');
  status.textContent = t('daily.generating', { date });
  report.token += 1; // what was loading is stale now
  $('report-body').replaceChildren();
  $('report-crumbs').replaceChildren();
  $('report-generate').disabled = true;
  try {
    await api(`/v1/reports/daily?${new URLSearchParams({ date })}`, { method: 'POST' });
    status.textContent = t('daily.generated', { date });
    await loadReport();
  } catch (e) {
    status.textContent = '';
    $('report-body').replaceChildren(el('p', { class: 'error-box', text: t('daily.generate_failed', { reason: describe(e) }) }));
  } finally {
    $('report-generate').disabled = false;
  }
}

/** @param {string | null} scope */
function drill(scope) {
  if (!scope) return;
  report.scope = scope;
  setScopeSelect(scope);
  loadReport();
}

async function loadReport() {
  const date = $('report-date').value;
  const body = $('report-body');
  updateReportLinks();
  if (!date) {
    body.replaceChildren(el('p', { class: 'muted', text: t('daily.choose_date') }));
    return;
  }
  const token = ++report.token;
  $('report-status').textContent = t('page.loading');
  let view;
  try {
    view = (await api(reportUrl())).body;
  } catch (e) {
    if (token !== report.token) return;
    $('report-status').textContent = '';
    $('report-crumbs').replaceChildren();
    let msg = describe(e);
    if (e instanceof ApiError && e.status === 404) {
      msg = can('generate_reports') ? `${e.message}. ${t('daily.use_generate')}` : `${e.message}.`;
    }
    body.replaceChildren(el('p', { class: 'error-box', text: msg }));
    return;
  }
  if (token !== report.token) return;
  $('report-status').textContent = '';
  renderReport(view || {}, token);
}

/**
 * A change score; withheld (null) when the baseline had too few days with data.
 * @param {unknown} v
 * @returns {HTMLElement}
 */
function zCell(v) {
  if (v === null || v === undefined) return el('span', { class: 'muted', title: t('daily.z_withheld_title') }, '—');
  const n = Number(v);
  return el('span', { class: n >= 2 ? 'zpos' : (n <= -2 ? 'zneg' : '') }, fmtNum(n, 2));
}

/**
 * A change score with what it rests on: the expected count and how many
 * of the baseline's days had data, or why it is withheld.
 * @param {unknown} z
 * @param {unknown} expected
 * @param {unknown} days
 * @param {number} of
 * @returns {HTMLElement}
 */
function zCard(z, expected, days, of) {
  const cover = days === null || days === undefined ? '' : t('daily.coverage', { days: fmtNum(days), of });
  if (z === null || z === undefined) {
    return el('span', {}, t('daily.not_enough_history'), el('div', { class: 'muted', text: cover }));
  }
  const basis = expected === null || expected === undefined ? cover : t('daily.expected', { expected: fmtNum(Number(expected), 1), coverage: cover });
  return el('span', {}, zCell(z), el('div', { class: 'muted', text: basis }));
}

/**
 * The columns of the figures of an area (parts and mahallas tables).
 * @returns {Column[]}
 */
const rowColumns = () => [
  { key: 'events', label: t('daily.col_events'), num: true },
  { key: 'incidents', label: t('daily.col_incidents'), num: true },
  { key: 'camera_alerts', label: t('daily.col_camera_alerts'), num: true },
  { key: 'fraud_flags', label: t('daily.col_fraud_flags'), num: true },
  { key: 'offences', label: t('daily.col_offences'), num: true },
  { key: 'cyber_share', label: t('daily.col_cyber_share'), num: true, fmt: fmtShare },
  { key: 'harm', label: t('daily.col_harm'), num: true },
  { key: 'z7', label: t('daily.col_z7'), num: true, fmt: zCell, fmtMissing: () => zCell(null) },
  { key: 'z28', label: t('daily.col_z28'), num: true, fmt: zCell, fmtMissing: () => zCell(null) },
  { key: 'camera_alerts_z7', label: t('daily.col_camera_z7'), num: true, fmt: zCell, fmtMissing: () => zCell(null) },
  { key: 'escalations_opened', label: t('daily.col_esc_opened'), num: true },
  { key: 'escalations_closed', label: t('daily.col_esc_closed'), num: true },
  // a mahalla's crime-free streak (null for larger areas)
  { key: 'crime_free_days', label: t('daily.col_days_since_offence'), num: true, fmt: (v, r) => (r.last_offence ? fmtNum(v) : `≥ ${fmtNum(v)}`), fmtMissing: () => '—' },
];

/**
 * The scope of a part or summary: `nation`, `unassigned` or `kind:id`.
 * @param {any} row
 * @returns {string | null}
 */
function scopeOf(row) {
  if (!row || !row.scope) return null;
  if (row.scope === 'nation' || row.scope === 'unassigned') return row.scope;
  return `${row.scope}:${row.scope_id}`;
}

/**
 * A link that opens the report of `scope`.
 * @param {string | null} scope
 * @param {string} text
 * @param {string} [title]
 */
const drillLink = (scope, text, title) => el('button', { type: 'button', class: 'linklike', title, onclick: () => drill(scope) }, text);

/** @type {Record<string, string>} */
const PART_CAPTIONS = { region: 'daily.parts_regions', district: 'daily.parts_districts', mahalla: 'daily.parts_mahallas' };

/**
 * @param {any} view
 * @param {number} token
 */
function renderReport(view, token) {
  const s = view.summary || {};
  // Breadcrumbs: nation › region › district › mahalla.
  /** @type {(Node | string)[]} */
  const crumbs = [drillLink('nation', t('daily.crumb_nation'))];
  if (s.region_id && s.scope !== 'region') crumbs.push(' › ', drillLink(`region:${s.region_id}`, regionName(s.region_id)));
  if (s.district_id && s.scope === 'mahalla') crumbs.push(' › ', drillLink(`district:${s.district_id}`, districtName(s.district_id)));
  if (s.scope && s.scope !== 'nation') crumbs.push(' › ', el('strong', { text: s.name || s.scope_id }));
  $('report-crumbs').replaceChildren(...crumbs);

  /** @param {string} k @param {Node | string} v */
  const card = (k, v) => el('div', { class: 'card' }, el('div', { class: 'k', text: k }), el('div', { class: 'v' }, v));
  const free = view.crime_free || {};
  const cards = el('div', { class: 'cards' },
    card(t('daily.card_events'), fmtNum(s.events)),
    card(t('daily.card_offences'), fmtNum(s.offences)),
    card(t('daily.card_incidents'), fmtNum(s.incidents)),
    card(t('daily.card_camera_alerts'), fmtNum(s.camera_alerts)),
    card(t('daily.card_fraud_flags'), fmtNum(s.fraud_flags)),
    card(t('daily.card_cyber_share'), fmtShare(s.cyber_share)),
    card(t('daily.card_harm'), fmtNum(s.harm)),
    card(t('daily.card_z7'), zCard(s.z7, s.baseline7, s.baseline7_days, 7)),
    card(t('daily.card_z28'), zCard(s.z28, s.baseline28, s.baseline28_days, 28)),
    card(t('daily.card_camera_z7'), zCard(s.camera_alerts_z7, s.camera_alerts_baseline7, s.baseline7_days, 7)),
    card(t('daily.card_escalations'), `${fmtNum(s.escalations_opened)} / ${fmtNum(s.escalations_closed)}`),
    card(t('daily.card_crime_free'), t('daily.n_of_m', { n: fmtNum(free.count ?? s.crime_free_mahallas), m: fmtNum(s.mahallas) })));
  const heading = el('h3', {}, t('daily.heading', { name: s.name || t('daily.report'), date: view.date || $('report-date').value }),
    el('span', { class: 'muted' }, ` ${t('daily.tz_day', { tz: view.time_zone || TZ() })}`));

  /** @type {any[]} */
  const parts = Array.isArray(view.parts) ? view.parts : [];
  const partKind = parts.find((p) => p.scope !== 'unassigned')?.scope;
  const partsTable = table({
    caption: partKind
      ? t(PART_CAPTIONS[partKind] || 'daily.parts_of', { name: s.name || t('daily.the_scope') })
      : t('daily.parts'),
    empty: t('daily.parts_none'),
    columns: [
      {
        key: 'name', label: t('daily.col_name'),
        fmt: (v, r) => (r.scope === 'unassigned' ? t('daily.outside') : drillLink(scopeOf(r), v || r.scope_id, t('daily.open_scope'))),
      },
      {
        key: 'crime_free_mahallas', label: t('daily.col_crime_free'), num: true,
        get: (r) => (r.scope === 'mahalla' ? (r.offences === 0 ? t('daily.yes') : t('daily.no')) : r.crime_free_mahallas),
        fmt: (v) => String(v),
      },
      ...rowColumns(),
    ],
    rows: parts,
  });

  const cats = table({
    caption: t('daily.categories'),
    empty: t('daily.categories_none'),
    columns: [
      { key: 'kind', label: t('daily.col_kind'), fmt: word },
      { key: 'category', label: t('daily.col_category'), fmt: word },
      { key: 'events', label: t('daily.col_events'), num: true },
      { key: 'harm', label: t('daily.col_harm'), num: true },
    ],
    rows: Array.isArray(view.categories) ? view.categories : [],
  });
  const hot = table({
    caption: t('daily.hot_cells'),
    empty: t('daily.hot_cells_none'),
    columns: [
      { key: 'rank', label: t('daily.col_rank'), num: true },
      { key: 'cell', label: t('daily.col_cell'), fmt: (v) => el('code', { text: String(v) }) },
      { key: 'events', label: t('daily.col_events'), num: true },
      { key: 'harm', label: t('daily.col_harm'), num: true },
    ],
    rows: Array.isArray(view.hot_cells) ? view.hot_cells : [],
  });
  const freeList = Array.isArray(free.mahallas) ? free.mahallas : [];
  const freeBox = el('section', {},
    el('h3', {}, t('daily.crime_free_count', { n: fmtNum(free.count ?? freeList.length) })),
    freeList.length
      ? el('ul', { class: 'free-list' }, freeList.map((/** @type {any} */ m) => el('li', {},
        drillLink(`mahalla:${m.mahalla_id}`, m.name || m.mahalla_id),
        m.district_id ? el('span', { class: 'muted' }, ` · ${districtName(m.district_id)}`) : '')))
      : el('p', { class: 'muted', text: t('daily.none_today') }));
  const mahallas = el('section', { id: 'report-mahallas' });
  $('report-body').replaceChildren(heading, cards, focusSection(view), streakSection(view), difficultSection(view), recurrenceSection(view), partsTable, mahallas, cats, hot, freeBox);
  if (s.scope === 'nation' || s.scope === 'region') loadReportMahallas(view.date || $('report-date').value, s, mahallas, token);
}

/** The focus groups of prevention, in the order of the report, and their names. */
const FOCUS_GROUPS = ['victim_minor', 'victim_youth', 'victim_woman', 'offender_minor', 'offender_youth', 'domestic', 'offender_youth_drugs'];

/** @param {string} g */
const focusLabel = (g) => t(`daily.focus_${g}`);

/**
 * A focus-group count as the report gives it: the number, "<3" (a small
 * count withheld from this account), or "withheld".
 * @param {any} f
 * @returns {Node | string}
 */
function focusCount(f) {
  if (!f) return '—';
  if (f.offences !== null && f.offences !== undefined) return fmtNum(f.offences);
  if (f.fewer_than) return el('span', { title: t('daily.small_count_title') }, `<${f.fewer_than}`);
  return el('span', { class: 'muted', title: t('daily.withheld_title') }, t('daily.withheld'));
}

/**
 * The focus groups of prevention: the scope's own, and per part.
 * @param {any} view
 * @returns {HTMLElement}
 */
function focusSection(view) {
  /** @type {any[]} */
  const rows = Array.isArray(view.focus_groups) ? view.focus_groups : [];
  const s = view.summary || {};
  /** @param {any} r @param {string} g */
  const of = (r, g) => rows.find((f) => f.scope === r.scope && f.scope_id === r.scope_id && f.focus_group === g);
  const own = FOCUS_GROUPS.map((g) => ({ label: focusLabel(g), f: of(s, g) })).filter((x) => x.f);
  const box = el('section', { id: 'report-focus' });
  if (!own.length) {
    box.append(el('h3', { text: t('daily.focus_groups') }), el('p', { class: 'muted', text: t('daily.focus_missing') }));
    return box;
  }
  box.append(table({
    caption: t('daily.focus_groups'),
    sortable: false,
    columns: [
      { key: 'label', label: t('daily.col_group') },
      { key: 'count', label: t('daily.col_offences'), get: (r) => r.f, fmt: (f) => focusCount(f) },
      { key: 'z7', label: t('daily.card_z7'), get: (r) => r.f, fmt: (f) => zCard(f.z7, f.baseline7, f.baseline7_days, 7) },
      { key: 'z28', label: t('daily.card_z28'), get: (r) => r.f, fmt: (f) => zCard(f.z28, f.baseline28, f.baseline28_days, 28) },
    ],
    rows: own,
  }));
  const parts = (Array.isArray(view.parts) ? view.parts : []).filter((/** @type {any} */ p) => p.scope !== 'unassigned');
  if (parts.length) {
    box.append(table({
      caption: t('daily.focus_by_area'),
      columns: [
        { key: 'name', label: t('daily.col_area'), fmt: (v, r) => drillLink(scopeOf(r), v || r.scope_id) },
        ...FOCUS_GROUPS.map((g) => ({
          key: g, label: focusLabel(g), num: true,
          get: (/** @type {any} */ r) => of(r, g)?.offences ?? (of(r, g) ? -1 : null),
          fmt: (/** @type {unknown} */ v, /** @type {any} */ r) => focusCount(of(r, g)),
        })),
      ],
      rows: parts,
    }));
  }
  return box;
}

/**
 * Crime-free streaks: a mahalla's own, or the scope's mahallas per threshold.
 * @param {any} view
 * @returns {HTMLElement}
 */
function streakSection(view) {
  const s = view.summary || {};
  const box = el('section', { id: 'report-streaks' }, el('h3', { text: t('daily.streaks') }));
  if (s.scope === 'mahalla') {
    const days = s.crime_free_days;
    let text = t('daily.streak_not_recorded');
    if (days !== null && days !== undefined) {
      if (!s.last_offence) {
        text = s.records_since
          ? t('daily.streak_since_records_on', { days, date: s.records_since })
          : t('daily.streak_since_records', { days });
      } else if (days === 0) {
        text = s.crime_free_days_before
          ? t('daily.offence_after', { days: s.crime_free_days_before })
          : t('daily.offence_today');
      } else {
        text = t('daily.days_since_offence', { days, date: s.last_offence });
      }
    }
    box.append(el('p', { text }));
    return box;
  }
  const st = view.streaks;
  if (!st || !Array.isArray(st.thresholds)) {
    box.append(el('p', { class: 'muted', text: t('daily.streaks_missing') }));
    return box;
  }
  /** @param {any[]} list */
  const mahallaLinks = (list) => (list.length
    ? el('span', {}, ...list.flatMap((m, i) => [i ? ', ' : '', drillLink(`mahalla:${m.mahalla_id}`, m.name || m.mahalla_id)]))
    : el('span', { class: 'muted', text: t('daily.none') }));
  if (st.records_since) box.append(el('p', { class: 'muted', text: t('daily.streaks_note', { date: st.records_since }) }));
  box.append(table({
    sortable: false,
    columns: [
      { key: 'days', label: t('daily.col_crime_free_for'), fmt: (v) => t('daily.days', { n: v }) },
      { key: 'count', label: t('daily.col_mahallas'), num: true },
      { key: 'joined', label: t('daily.col_joined'), fmt: (v) => mahallaLinks(v) },
      { key: 'left', label: t('daily.col_left'), fmt: (v) => mahallaLinks(v) },
    ],
    rows: st.thresholds,
  }));
  return box;
}

/**
 * Difficult mahallas: the rule's list, newly difficult and recovered.
 * @param {any} view
 * @returns {HTMLElement}
 */
function difficultSection(view) {
  const s = view.summary || {};
  const d = view.difficult || {};
  /** @type {any[]} */
  const list = Array.isArray(d.mahallas) ? d.mahallas : [];
  /** @type {any[]} */
  const recovered = Array.isArray(d.recovered) ? d.recovered : [];
  const box = el('section', { id: 'report-difficult' });
  if (s.difficult_mahallas === null || s.difficult_mahallas === undefined) {
    box.append(el('h3', { text: t('daily.difficult') }), el('p', {
      class: 'muted',
      text: s.scope === 'unassigned' ? t('daily.not_for_outside') : t('daily.difficult_missing'),
    }));
    return box;
  }
  const newly = list.filter((r) => r.newly).length;
  box.append(
    el('h3', { text: t('daily.difficult_count', { n: fmtNum(list.length) }) }),
    el('p', { class: 'muted', text: t('daily.difficult_note', { newly: fmtNum(newly), recovered: fmtNum(recovered.length) }) }));
  const rows = list.concat(recovered);
  if (!rows.length) return box;
  box.append(table({
    caption: t('daily.difficult_table'),
    columns: [
      { key: 'name', label: t('daily.col_mahalla'), fmt: (v, r) => drillLink(`mahalla:${r.mahalla_id}`, v || r.mahalla_id) },
      { key: 'district_id', label: t('daily.col_district'), fmt: districtName },
      {
        key: 'status', label: t('daily.col_status'),
        get: (r) => {
          if (r.status !== 'difficult') return t('daily.status_recovered');
          return r.newly ? t('daily.status_newly_difficult') : t('daily.status_difficult');
        },
      },
      { key: 'difficult_since', label: t('daily.col_since'), fmtMissing: () => '—' },
      {
        key: 'difficult_days', label: t('daily.col_difficult_days'), num: true,
        fmt: (v, r) => el('span', {
          title: t('daily.difficult_days_title', { escalation: r.escalation_days, score: r.score_days, scored: r.days_scored }),
        }, fmtNum(v)),
      },
      { key: 'offences_7d', label: t('daily.col_offences_7d'), num: true },
      { key: 'offences_prev_7d', label: t('daily.col_offences_prev_7d'), num: true },
      { key: 'trend', label: t('daily.col_trend'), fmt: word },
      {
        key: 'open_escalations', label: t('daily.col_open_escalations'), num: true,
        fmt: (v, r) => (r.open_level ? `${fmtNum(v)} (${word(r.open_level)})` : fmtNum(v)),
      },
      { key: 'inspector', label: t('daily.col_inspector'), fmtMissing: () => '—' },
    ],
    rows,
  }));
  return box;
}

/**
 * Recurrence over the last 14 days: repeat locations and near repeats.
 * @param {any} view
 * @returns {HTMLElement}
 */
function recurrenceSection(view) {
  const s = view.summary || {};
  const box = el('section', { id: 'report-recurrence' }, el('h3', { text: t('daily.recurrence') }));
  if (s.place_offences === null || s.place_offences === undefined) {
    box.append(el('p', {
      class: 'muted',
      text: s.scope === 'unassigned' ? t('daily.not_for_outside') : t('daily.recurrence_missing'),
    }));
    return box;
  }
  const ratio = s.near_repeat_ratio;
  box.append(el('p', {},
    t('daily.recurrence_summary', { place: s.place_offences, cells: s.repeat_cells, offences: s.repeat_offences }),
    ratio === null || ratio === undefined ? '' : ` ${t('daily.near_repeats', {
      offences: fmtNum(s.near_repeat_offences),
      share: fmtShare(s.near_repeat_share),
      pairs: s.near_repeat_pairs,
      expected: fmtNum(Number(s.near_repeat_expected), 1),
      ratio: fmtNum(Number(ratio), 2),
      excess: fmtNum(Number(s.near_repeat_excess), 2),
    })}`));
  const parts = (Array.isArray(view.parts) ? view.parts : [])
    .filter((/** @type {any} */ p) => p.near_repeat_ratio !== null && p.near_repeat_ratio !== undefined);
  if (parts.length) {
    box.append(table({
      caption: t('daily.near_repeats_by_area'),
      columns: [
        { key: 'name', label: t('daily.col_area'), fmt: (v, r) => drillLink(scopeOf(r), v || r.scope_id) },
        { key: 'place_offences', label: t('daily.col_place_offences'), num: true },
        { key: 'repeat_cells', label: t('daily.col_repeat_cells'), num: true },
        { key: 'near_repeat_share', label: t('daily.col_near_repeat_share'), num: true, fmt: fmtShare },
        { key: 'near_repeat_ratio', label: t('daily.col_near_repeat_ratio'), num: true, fmt: (v) => fmtNum(Number(v), 2) },
        { key: 'near_repeat_excess', label: t('daily.col_near_repeat_excess'), num: true, fmt: (v) => fmtNum(Number(v), 2) },
      ],
      rows: parts,
    }));
  }
  box.append(table({
    caption: t('daily.repeat_locations'),
    empty: t('daily.repeat_locations_none'),
    columns: [
      { key: 'rank', label: t('daily.col_rank'), num: true },
      { key: 'cell', label: t('daily.col_cell'), fmt: (v) => el('code', { text: String(v) }) },
      { key: 'category', label: t('daily.col_category'), fmt: word },
      { key: 'mahalla_id', label: t('daily.col_mahalla'), fmt: (v) => drillLink(`mahalla:${v}`, mahallaName(v)) },
      { key: 'offences', label: t('daily.col_offences'), num: true },
      { key: 'first_offence', label: t('daily.col_first'), fmt: fmtTime },
      { key: 'last_offence', label: t('daily.col_latest'), fmt: fmtTime },
    ],
    rows: Array.isArray(view.repeat_cells) ? view.repeat_cells : [],
  }));
  return box;
}

/**
 * Every mahalla of a nation or region report, most harm first, from GET
 * /v1/reports/daily/mahallas (which also gives the equivalent SQL, for the
 * console).
 * @param {string} date
 * @param {any} s the report's summary
 * @param {HTMLElement} box
 * @param {number} token
 * @returns {Promise<void>}
 */
async function loadReportMahallas(date, s, box, token) {
  box.replaceChildren(el('h3', { text: t('daily.mahallas_title') }), el('p', { class: 'muted', text: t('page.loading') }));
  const p = new URLSearchParams({ date, scope: scopeOf(s) || 'nation' });
  let out;
  try {
    out = (await api(`/v1/reports/daily/mahallas?${p}`)).body || {};
  } catch (e) {
    if (token === report.token) {
      box.replaceChildren(el('h3', { text: t('daily.mahallas') }),
        el('p', { class: 'error-box', text: t('daily.mahallas_failed', { reason: describe(e) }) }));
    }
    return;
  }
  if (token !== report.token) return;
  const rows = Array.isArray(out.rows) ? out.rows : [];
  const sql = typeof out.sql === 'string' ? out.sql : '';
  box.replaceChildren(
    table({
      caption: out.truncated ? t('daily.mahallas_caption_cut', { n: rows.length }) : t('daily.mahallas_caption', { n: rows.length }),
      empty: t('daily.mahallas_none'),
      columns: [
        { key: 'name', label: t('daily.col_mahalla'), fmt: (v, r) => drillLink(`mahalla:${r.mahalla_id}`, v || r.mahalla_id) },
        { key: 'district_id', label: t('daily.col_district'), fmt: districtName },
        ...rowColumns(),
      ],
      rows,
    }),
    ...(sql && can('read_sql')
      ? [el('p', {}, el('button', { type: 'button', class: 'quiet', onclick: () => openQuery(sql) }, t('daily.open_in_sql')))]
      : []));
}
