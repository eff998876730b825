// @ts-check
// Posbon command centre: map of the mahallas by risk, live escalation feed,
// daily situation report and SQL console, behind a login (session cookie set
// by POST /v1/login, CSRF token in X-CSRF-Token on every state-changing
// request), in Uzbek, Russian or English. Native ES modules, no framework,
// no build step, no network access beyond this origin. This is the start:
// the error hook first, then the messages, then the session, and once
// someone is logged in, every part of the page. See
// services/posbon-api/src/page.rs.

import { page } from './errors.js'; // first: the error hook is in place before anything else runs
import { $, el } from './dom.js';
import { describe } from './api.js';
import { has, lang, languages, loadMessages, setLanguage, t } from './i18n.js';
import { applyPermissions, onViewStart, showView, viewAllowed, views } from './views.js';
import {
  can, checkSession, clearError, initLogin, renderBanner, renderWho, setUser, showError,
} from './session.js';
import { loadRegistry } from './registry.js';
import { initMap, loadMap, refreshRisk } from './map.js';
import { showMahalla } from './detail.js';
import { fillRegionFilter, initFeed, loadFeed, onAct, refreshFeedItems, setConn } from './feed.js';
import { initActions, openAction } from './actions.js';
import { fillReportScopes, startReport } from './report.js';
import { initSql, startSql } from './sql.js';
import { initSilences } from './silences.js';

const RISK_REFRESH_MS = 10000;

/** The language selector of the header: each language in its own name. */
function initLanguages() {
  const select = $('lang');
  select.replaceChildren(...languages().map((l) => el('option', { value: l.code, lang: l.code, text: l.name })));
  select.value = lang();
  select.addEventListener('change', () => {
    if (select.value && select.value !== lang()) setLanguage(select.value);
  });
}

/** Shows the application to the user who is logged in. */
function showSignedIn() {
  document.body.dataset.auth = 'in';
  for (const id of ['login', 'boot']) $(id).hidden = true;
  for (const id of ['main', 'views-nav', 'who', 'conn']) $(id).hidden = false;
  $('login-password').value = '';
  $('login-error').hidden = true;
  renderWho();
  applyPermissions();
  renderBanner();
}

let started = false;

/**
 * Someone is logged in (the answer of POST /v1/login or GET /v1/me).
 * @param {any} body
 */
function signedIn(body) {
  setUser(body);
  showSignedIn();
  if (!started) {
    started = true;
    start();
  }
}

/**
 * Starts the page once someone is logged in (once per load: a session that
 * ends reloads the page).
 * @returns {Promise<void>}
 */
async function start() {
  initMap((id, centre) => showMahalla(id, centre));
  initFeed();
  onAct(openAction);
  initActions();
  initSql();
  onViewStart('report', startReport);
  onViewStart('sql', startSql);
  window.addEventListener('hashchange', showView);
  showView();
  if (!views.some(viewAllowed)) {
    setConn('off', 'feed.conn_no_feed');
    document.body.dataset.ready = 'true';
    return;
  }
  if (can('read_map')) {
    try {
      await loadRegistry();
      fillRegionFilter();
      fillReportScopes();
      clearError('registry');
      renderWho(); // the scope by its names now
    } catch (e) {
      showError('registry', t('page.registry_failed', { reason: describe(e) }));
    }
  }
  initSilences();
  /** @type {Promise<void> | null} */
  let feedStarted = null;
  if (can('read_escalations')) feedStarted = loadFeed();
  else setConn('off', 'feed.conn_no_feed');
  if (can('read_map')) {
    try {
      await loadMap();
      clearError('map');
      // Names arrived: label what the feed shows already.
      refreshFeedItems();
    } catch (e) {
      $('map-status').textContent = '';
      showError('map', t('map.load_failed', { reason: describe(e) }));
    }
    setInterval(refreshRisk, RISK_REFRESH_MS);
  }
  await feedStarted;
  document.body.dataset.ready = 'true';
}

/** At load: the messages, then the page as it was when the session is still valid, else the login form. */
async function boot() {
  try {
    await loadMessages();
  } catch (e) {
    // The page goes on in English, with the texts of the HTML.
    page.errors.push(`messages: ${describe(e)}`);
  }
  if (has('page.title')) document.title = t('page.title');
  initLanguages();
  initLogin(signedIn);
  const me = await checkSession();
  if (me) signedIn(me);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
else boot();
