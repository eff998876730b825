// @ts-check
// The live feed of escalations: GET /v1/escalations (filters: region,
// district, level, closed ones), then /v1/feed?since=<X-Alerts-Sequence>
// over EventSource, which resumes with Last-Event-ID after a drop. Records
// are merged by id (a version with fewer audit steps is an older one),
// newest first; new and changed entries flash. Each record says which
// actions this user may take on it now (`allowed_actions`, decided by the
// server); the buttons follow.

import { $, announce, el, localGet, localSet } from './dom.js';
import { api, describe } from './api.js';
import { page } from './errors.js';
import { LEVELS, STATUSES, ago, badge, fmtNum, fmtTime, levelOf } from './format.js';
import { t, word } from './i18n.js';
import { map, setMahallaRisk, updateMapStatus } from './map.js';
import { showMahalla } from './detail.js';
import { districtName, mahallaName, names, regionName } from './registry.js';
import { can, clearError, onSessionEnd, refreshSession, showError } from './session.js';

/** The actions on an escalation, in the order of their buttons. */
export const ACTIONS = ['acknowledge', 'assign', 'resolve', 'false_alarm'];

const MAX_FEED = 500;

/**
 * The feed's state.
 * @typedef {object} FeedState
 * @property {Map<string, any>} records id → record
 * @property {Map<string, HTMLElement>} items id → its li
 * @property {number} seq the last ALERTS sequence seen
 * @property {EventSource | null} es
 * @property {ReturnType<typeof setTimeout> | undefined} retry
 * @property {number} generation bumped by each new listing, to drop stale answers
 */

/** @type {FeedState} */
export const feed = {
  records: new Map(),
  items: new Map(),
  seq: 0,
  es: null,
  retry: undefined,
  generation: 0,
};

onSessionEnd(() => {
  if (feed.es) feed.es.close();
  feed.es = null;
  clearTimeout(feed.retry);
});

/** What the action buttons do (main.js: the act dialog). @type {(id: string, action: string) => void} */
let act = () => {};

/**
 * Sets what a click on an action button does.
 * @param {(id: string, action: string) => void} fn
 */
export function onAct(fn) {
  act = fn;
}

/** Fills the region filter from the registry (and the filters kept from last time). */
export function fillRegionFilter() {
  const region = $('f-region');
  region.replaceChildren(el('option', { value: '', text: t('feed.all') }),
    ...[...names.regions].map(([id, r]) => el('option', { value: id, text: r.name })));
  region.value = localGet('posbon.f.region', '');
  if (region.value !== localGet('posbon.f.region', '')) region.value = '';
  fillDistrictFilter();
  $('f-district').value = localGet('posbon.f.district', '');
  $('f-level').value = localGet('posbon.f.level', '');
  $('f-closed').checked = localGet('posbon.f.closed', '') === '1';
}

function fillDistrictFilter() {
  const region = $('f-region').value;
  const district = $('f-district');
  const keep = district.value;
  const options = [el('option', { value: '', text: t('feed.all') })];
  for (const [rid, r] of names.regions) {
    if (region && rid !== region) continue;
    for (const d of r.districts) options.push(el('option', { value: d.id, text: d.name }));
  }
  district.replaceChildren(...options);
  district.value = keep;
  if (district.value !== keep) district.value = '';
}

function feedFilters() {
  const p = new URLSearchParams();
  const region = $('f-region').value;
  const district = $('f-district').value;
  const level = $('f-level').value;
  if (region) p.set('region', region);
  if (district) p.set('district', district);
  if (level) p.set('min_level', level);
  return p;
}

/**
 * The connection badge: `state` (connecting, live, reconnecting, offline,
 * off) is its class and `data-state`; `key` the message it shows (else
 * the state's own, `feed.conn_<state>`).
 * @param {string} state
 * @param {string} [key]
 */
export function setConn(state, key) {
  const c = $('conn');
  c.className = `conn conn-${state}`;
  c.textContent = t(key || `feed.conn_${state}`);
  c.dataset.state = state;
}

/**
 * Lists the escalations, then follows the feed from the listing's sequence.
 * @returns {Promise<void>}
 */
export async function loadFeed() {
  const generation = ++feed.generation;
  if (feed.es) feed.es.close();
  feed.es = null;
  clearTimeout(feed.retry);
  setConn('connecting');
  const p = feedFilters();
  p.set('limit', '300');
  if (!$('f-closed').checked) p.set('status', 'open,acknowledged,assigned');
  let res;
  try {
    res = await api(`/v1/escalations?${p}`);
  } catch (e) {
    if (generation !== feed.generation) return;
    showError('feed', t('feed.list_failed', { reason: describe(e) }));
    setConn('offline');
    feed.retry = setTimeout(loadFeed, 5000);
    return;
  }
  if (generation !== feed.generation) return;
  clearError('feed');
  feed.seq = Number(res.headers.get('X-Alerts-Sequence')) || 0;
  feed.records.clear();
  feed.items.clear();
  $('feed').replaceChildren();
  for (const r of Array.isArray(res.body) ? res.body : []) merge(r, 'listed');
  updateFeedCount();
  if (can('read_feed')) openFeed(generation);
  else setConn('off', 'feed.conn_not_live');
}

/** @param {number} generation */
function openFeed(generation) {
  if (generation !== feed.generation) return;
  const p = feedFilters();
  p.set('since', String(feed.seq));
  const es = new EventSource(`/v1/feed?${p}`);
  feed.es = es;
  es.onopen = () => {
    if (feed.es !== es) return;
    setConn('live');
    clearError('feed');
  };
  es.onerror = () => {
    if (feed.es !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The server refused the stream: the browser will not retry by itself.
      es.close();
      feed.es = null;
      setConn('offline');
      showError('feed', t('feed.refused'));
      clearTimeout(feed.retry);
      feed.retry = setTimeout(() => openFeed(generation), 5000);
      // EventSource does not tell why: a session that ended is one reason,
      // and the session check then leaves for the login form.
      refreshSession().catch(() => {});
    } else {
      // EventSource reconnects with Last-Event-ID by itself.
      setConn('reconnecting');
    }
  };
  /** @param {string} type @returns {(ev: MessageEvent) => void} */
  const onMessage = (type) => (ev) => {
    if (feed.es !== es) return;
    const seq = Number(ev.lastEventId);
    if (Number.isFinite(seq) && seq > feed.seq) feed.seq = seq;
    let record;
    try {
      record = JSON.parse(ev.data);
    } catch {
      page.errors.push(`unreadable feed message ${ev.lastEventId}`);
      return;
    }
    merge(record, type);
  };
  es.addEventListener('opened', onMessage('opened'));
  es.addEventListener('updated', onMessage('updated'));
}

/** @param {any} r */
const steps = (r) => (Array.isArray(r.history) ? r.history.length : 0);
/** @param {any} r */
const isClosed = (r) => r.status === 'resolved' || r.status === 'false_alarm';
/** @param {any} r @returns {[string, number]} */
const sortKey = (r) => [String(r.opened_at || ''), Number(r.alert_sequence) || 0];
/** @param {any} a @param {any} b */
function newer(a, b) {
  const [ta, sa] = sortKey(a); const [tb, sb] = sortKey(b);
  const x = new Date(ta).getTime(); const y = new Date(tb).getTime();
  return x !== y ? x > y : sa > sb;
}

/**
 * What this user may do to record `r` now, as the server says (none when
 * it does not say).
 * @param {any} r
 * @returns {string[]}
 */
export const allowedOf = (r) => (Array.isArray(r?.allowed_actions) ? r.allowed_actions.map(String) : []);

/**
 * Merges a record by id: a version with fewer audit steps than the one
 * shown is an older one (a replay after a reconnect) and is ignored.
 * `how`: listed, opened, updated (from the feed) or action (our own).
 * @param {any} r
 * @param {string} how
 */
export function merge(r, how) {
  if (!r || typeof r.id !== 'string') return;
  const old = feed.records.get(r.id);
  if (old && steps(old) > steps(r)) return;
  if (old && steps(old) === steps(r) && old.updated_at === r.updated_at && old.status === r.status
      && allowedOf(old).join() === allowedOf(r).join()) return;
  feed.records.set(r.id, r);
  const li = renderItem(r);
  const existing = feed.items.get(r.id);
  if (existing) {
    const active = /** @type {HTMLElement | null} */ (document.activeElement);
    const focused = active && existing.contains(active) && active.dataset.action;
    existing.replaceWith(li);
    if (focused) /** @type {HTMLElement | null} */ (li.querySelector(`button[data-action="${focused}"]`))?.focus();
  } else {
    const list = $('feed');
    let before = null;
    for (const other of list.children) {
      const o = feed.records.get(other.dataset.id);
      if (o && newer(r, o)) { before = other; break; }
    }
    list.insertBefore(li, before);
    while (list.children.length > MAX_FEED) {
      const last = list.lastElementChild;
      feed.items.delete(last.dataset.id);
      feed.records.delete(last.dataset.id);
      last.remove();
    }
  }
  feed.items.set(r.id, li);
  if (how !== 'listed') {
    li.classList.add(old ? 'flash-updated' : 'flash-new');
    if (!old) {
      announce(t('feed.announce_new', { level: word(r.level), mahalla: mahallaName(r.mahalla_id), rule: word(r.rule) }));
      const open = (map.open.get(r.mahalla_id) || 0) + (isClosed(r) ? 0 : 1);
      const current = map.levels.get(r.mahalla_id) || 'normal';
      const level = LEVELS.indexOf(r.level) > LEVELS.indexOf(current) ? levelOf(r.level) : current;
      setMahallaRisk(r.mahalla_id, level, open, true);
      updateMapStatus();
    } else if (how === 'updated' && old.status !== r.status) {
      announce(t('feed.announce_status', { mahalla: mahallaName(r.mahalla_id), status: word(r.status) }));
    }
  }
  updateFeedCount();
}

/** Draws every entry again (the mahallas' names arrived with the map). */
export function refreshFeedItems() {
  for (const r of feed.records.values()) {
    const li = feed.items.get(r.id);
    if (li) {
      const fresh = renderItem(r);
      li.replaceWith(fresh);
      feed.items.set(r.id, fresh);
    }
  }
}

function updateFeedCount() {
  let open = 0;
  for (const r of feed.records.values()) if (r.status === 'open') open += 1;
  const n = feed.records.size;
  $('feed-count').textContent = n ? t('feed.count', { n, open }) : t('feed.none');
}

/**
 * `2026-05-01 14:03:07 (5 min ago)`.
 * @param {string} at
 */
const timeAndAgo = (at) => `${fmtTime(at)} (${ago(at)})`;

/**
 * What fired the escalation's rule against what the rule needs; a record
 * made before measures were kept shows its headline score.
 * @param {any} r an escalation
 * @returns {string}
 */
export function measureText(r) {
  const m = r.measure;
  if (!m || typeof m !== 'object') return t('feed.measure_none', { score: fmtNum(r.score, 2) });
  const num = (/** @type {number} */ v) => (Number.isInteger(v) ? fmtNum(v) : fmtNum(v, 2));
  const key = { count: 'feed.measure_count', harm: 'feed.measure_harm', score: 'feed.measure_score' }[String(m.name)];
  if (!key) return t('feed.measure_none', { score: fmtNum(r.score, 2) });
  let text = t(key, { value: num(m.value), threshold: num(m.threshold) });
  if (typeof m.min_z === 'number') {
    text += ', ' + (typeof m.z === 'number'
      ? t('feed.measure_z', { z: num(m.z), min_z: num(m.min_z) })
      : t('feed.measure_before_baseline'));
  }
  return text;
}

/**
 * One entry of the feed.
 * @param {any} r
 * @returns {HTMLElement}
 */
function renderItem(r) {
  const level = levelOf(r.level);
  const m = names.mahallas.get(r.mahalla_id);
  const li = el('li', {
    class: `esc lvl-${level}${isClosed(r) ? ' closed' : ''}`,
    dataset: { id: r.id, status: r.status, mahalla: r.mahalla_id },
    'aria-label': t('feed.item_label', { level: word(level), mahalla: mahallaName(r.mahalla_id), status: word(r.status) }),
  });
  const head = el('div', { class: 'esc-head' },
    badge(r.level),
    can('read_map')
      ? el('button', {
        type: 'button', class: 'linklike mahalla', title: t('feed.show_on_map'),
        onclick: () => showMahalla(r.mahalla_id, true),
      }, mahallaName(r.mahalla_id))
      : el('strong', { class: 'mahalla', text: mahallaName(r.mahalla_id) }),
    r.previous_level && r.previous_level !== r.level ? el('span', { class: 'muted', text: t('feed.from_level', { level: word(r.previous_level) }) }) : null,
    el('span', { class: `esc-status st-${STATUSES.includes(r.status) ? r.status : 'open'}`, text: word(r.status) }));
  const meta = el('div', { class: 'esc-meta' },
    t('feed.meta', {
      district: districtName(r.district_id || m?.district_id),
      region: regionName(r.region_id || m?.region_id),
      rule: word(r.rule),
      measure: measureText(r),
    }),
    el('br'),
    t('feed.opened'), ' ', el('time', { datetime: r.opened_at, class: 'ago', dataset: { at: r.opened_at } }, timeAndAgo(r.opened_at)),
    ' · ', t('feed.notified', { tier: word(r.tier || '—') }),
    r.assignee ? [' · ', t('feed.assigned_to', { name: r.assignee })] : '');
  const counts = Object.entries(r.counts || {});
  const countLine = el('div', { class: 'esc-counts' },
    counts.map(([k, v]) => el('span', {}, `${word(k)} ×${v}`)),
    Array.isArray(r.evidence) ? el('span', {}, t('feed.evidence', { n: r.evidence.length })) : null,
    Array.isArray(r.hot_cells) && r.hot_cells.length ? el('span', {}, t('feed.hot_cells', { n: r.hot_cells.length })) : null);
  const allowed = allowedOf(r);
  const actions = el('div', { class: 'esc-actions', role: 'group', 'aria-label': t('feed.actions') },
    ACTIONS.map((action) => el('button', {
      type: 'button',
      dataset: { action },
      disabled: !allowed.includes(action),
      title: allowed.includes(action) ? t(`act.title_${action}`) : t('feed.not_possible'),
      onclick: () => act(r.id, action),
    }, t(`act.${action}`))));
  const history = el('details', {},
    el('summary', {}, t('feed.history', { n: steps(r) })),
    el('ol', {}, (r.history || []).map((/** @type {any} */ h) => el('li', {},
      t('feed.step', { time: fmtTime(h.at), kind: word(h.kind), by: h.by, status: word(h.status) }),
      h.assignee ? [' ', t('feed.step_to', { name: h.assignee })] : '',
      h.tier && !h.receiver ? [' ', t('feed.step_notified', { tier: word(h.tier) })] : '',
      h.receiver ? [' ', t('feed.step_receiver', { receiver: h.receiver, step: h.step })] : '',
      h.note ? t('feed.step_note', { note: h.note }) : ''))),
    el('p', {}, t('feed.id'), ' ', el('code', { text: r.id })));
  li.append(head, meta, countLine, ...(allowed.length ? [actions] : []), history);
  return li;
}

/** Sets up the filters (each change lists again) and the relative times. */
export function initFeed() {
  $('f-region').addEventListener('change', () => {
    fillDistrictFilter();
    saveFilters();
    loadFeed();
  });
  for (const id of ['f-district', 'f-level', 'f-closed']) {
    $(id).addEventListener('change', () => {
      saveFilters();
      loadFeed();
    });
  }
  $('filters').addEventListener('submit', (/** @type {Event} */ e) => e.preventDefault());
  setInterval(() => {
    for (const node of document.querySelectorAll('#feed time.ago')) {
      node.textContent = timeAndAgo(/** @type {HTMLElement} */ (node).dataset.at || '');
    }
  }, 30000);
}

function saveFilters() {
  localSet('posbon.f.region', $('f-region').value);
  localSet('posbon.f.district', $('f-district').value);
  localSet('posbon.f.level', $('f-level').value);
  localSet('posbon.f.closed', $('f-closed').checked ? '1' : '');
}
