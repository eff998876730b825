// @ts-check
// The page's three views (map and feed, daily report, SQL console), chosen
// by the address's #hash, and what this user's permissions let them see.

import { $ } from './dom.js';
import { t, word } from './i18n.js';
import { can, session } from './session.js';

/** The views, in the order of the header. */
export const views = ['map', 'report', 'sql'];

// A view shows when the user has one of these permissions (the server
// refuses the rest anyway: hiding is only so as not to offer it).
/** @type {Record<string, string[]>} */
const VIEW_NEEDS = { map: ['read_map', 'read_escalations'], report: ['read_reports'], sql: ['read_sql'] };

/**
 * Whether this user may open view `v`.
 * @param {string} v
 * @returns {boolean}
 */
export const viewAllowed = (v) => (VIEW_NEEDS[v] || []).some(can);

/** @type {Set<string>} */
const viewStarted = new Set();

/** @type {Record<string, () => void>} */
const starters = {};

/**
 * Runs `fn` the first time view `name` shows.
 * @param {string} name
 * @param {() => void} fn
 */
export function onViewStart(name, fn) {
  starters[name] = fn;
}

/** Shows the view of the address (or the first this user may open). */
export function showView() {
  if (!session.user) return;
  const wanted = location.hash.slice(1);
  const name = views.includes(wanted) && viewAllowed(wanted) ? wanted : views.find(viewAllowed);
  // A view this user may not open (an old link, a bookmark): say which one shows.
  if (name && wanted && wanted !== name) history.replaceState(null, '', `#${name}`);
  for (const v of views) $(`view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll('.top nav a')) {
    if (/** @type {HTMLElement} */ (a).dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name && !viewStarted.has(name)) {
    viewStarted.add(name);
    starters[name]?.();
  }
}

/** Hides what this user's permissions do not allow. */
export function applyPermissions() {
  for (const a of document.querySelectorAll('.top nav a')) {
    const link = /** @type {HTMLElement} */ (a);
    link.hidden = !viewAllowed(link.dataset.view || '');
  }
  $('map-pane').hidden = !can('read_map');
  $('feed-pane').hidden = !can('read_escalations');
  $('view-map').classList.toggle('single', !can('read_map') || !can('read_escalations'));
  $('report-generate').hidden = !can('generate_reports');
  const none = !views.some(viewAllowed);
  const note = $('no-access');
  note.textContent = none ? t('page.no_access', { role: word(session.user?.role) }) : '';
  note.hidden = !none;
}
