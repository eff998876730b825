// @ts-check
// The mahalla panel beside the map: a mahalla's level, facts, hot cells,
// escalations and recent events (GET /v1/mahallas/{id}).

import { $, el } from './dom.js';
import { api, describe } from './api.js';
import { badge, fmtNum, fmtTime } from './format.js';
import { t, word } from './i18n.js';
import { centreOn, selectPath } from './map.js';
import { districtName, mahallaName, regionName } from './registry.js';
import { table } from './tables.js';

let detailToken = 0;

/**
 * Opens the panel of mahalla `id` (and outlines it; `centre` zooms to it).
 * @param {string} id
 * @param {boolean} centre
 * @returns {Promise<void>}
 */
export async function showMahalla(id, centre) {
  selectPath(id);
  if (centre) centreOn(id);
  const token = ++detailToken;
  const box = $('detail');
  box.hidden = false;
  box.dataset.id = id;
  $('detail-title').textContent = mahallaName(id);
  const body = $('detail-body');
  body.replaceChildren(el('p', { class: 'muted', text: t('page.loading') }));
  let d;
  try {
    d = (await api(`/v1/mahallas/${encodeURIComponent(id)}?hours=24&events=100`)).body;
  } catch (e) {
    if (token === detailToken) body.replaceChildren(el('p', { class: 'error-box', text: describe(e) }));
    return;
  }
  if (token !== detailToken) return;
  $('detail-title').textContent = d.name || id;
  /** @param {string} k @param {Node | string} v */
  const fact = (k, v) => el('div', {}, el('dt', { text: k }), el('dd', {}, v));
  const win = d.window || {};
  const facts = el('dl', { class: 'facts' },
    fact(t('detail.level'), badge(d.level)),
    fact(t('detail.score'), fmtNum(d.score, 2)),
    fact(t('detail.since'), d.since ? fmtTime(d.since) : '—'),
    fact(t('detail.district'), districtName(d.district_id)),
    fact(t('detail.region'), regionName(d.region_id)),
    fact(t('detail.population'), fmtNum(d.population)),
    fact(t('detail.inspector'), d.inspector || '—'),
    fact(t('detail.events_24h'), fmtNum(win.events)),
    fact(t('detail.id'), el('code', { text: d.id || id })));
  const hot = table({
    caption: t('detail.hot_cells'),
    empty: t('detail.hot_cells_none'),
    columns: [
      { key: 'cell', label: t('detail.cell'), fmt: (v) => el('code', { text: String(v) }) },
      { key: 'gi_z', label: t('detail.gi_z'), num: true, fmt: (v) => fmtNum(v, 2) },
      { key: 'events', label: t('detail.events'), num: true },
    ],
    rows: Array.isArray(d.hot_cells) ? d.hot_cells : [],
  });
  const escs = Array.isArray(d.escalations) ? d.escalations : [];
  const escTable = table({
    caption: t('detail.escalations'),
    empty: t('detail.escalations_none'),
    columns: [
      { key: 'opened_at', label: t('detail.opened'), fmt: fmtTime },
      { key: 'level', label: t('detail.level'), fmt: badge },
      { key: 'rule', label: t('detail.rule'), fmt: word },
      { key: 'status', label: t('detail.status'), fmt: word },
      { key: 'score', label: t('detail.score'), num: true, fmt: (v) => fmtNum(v, 2) },
      { key: 'id', label: t('detail.id'), fmt: (v) => el('code', { text: v }) },
    ],
    rows: escs,
  });
  const events = Array.isArray(d.events) ? d.events : [];
  const evTable = table({
    caption: t('detail.events_caption', { shown: events.length, total: fmtNum(win.events) }),
    empty: t('detail.events_none'),
    columns: [
      { key: 'time', label: t('detail.occurred') },
      { key: 'kind', label: t('detail.kind'), fmt: word },
      { key: 'what', label: t('detail.what'), fmt: word },
      { key: 'detail', label: t('detail.detail') },
      { key: 'source', label: t('detail.source') },
      { key: 'id', label: t('detail.id'), fmt: (v) => el('code', { text: v }) },
    ],
    rows: events.map(eventRow),
  });
  body.replaceChildren(facts, hot, escTable, evTable);
}

/**
 * One row of the events table from an enriched event.
 * @param {any} enriched
 * @returns {{ time: string, kind: string, what: string, detail: string, source: string, id: string }}
 */
function eventRow(enriched) {
  const e = (enriched && enriched.event) || {};
  let what = ''; let detail = '';
  if (e.kind === 'incident') {
    what = e.category;
    const severity = e.severity ?? '—';
    detail = e.status ? t('detail.severity_status', { severity, status: word(e.status) }) : t('detail.severity', { severity });
  } else if (e.kind === 'camera_alert') {
    what = e.detection;
    detail = t('detail.camera', { confidence: fmtNum(e.confidence, 2), camera: e.camera_id ?? '—' });
  } else if (e.kind === 'fraud_flag') {
    what = e.scheme;
    const amount = fmtNum(e.amount_uzs);
    detail = e.channel ? t('detail.fraud_channel', { amount, channel: word(e.channel) }) : t('detail.fraud', { amount });
  }
  return { time: fmtTime(e.occurred_at), kind: e.kind, what, detail, source: e.source, id: e.id };
}
