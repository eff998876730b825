// @ts-check
// Who is logged in: the login form, GET /v1/me, logging out, the session
// ending (a 401 from the server), the permissions that decide what shows
// (`can`), the header's name, role and scope, and the banner of errors.
//
// The session itself is an HttpOnly cookie this script never sees; the CSRF
// token is kept here only (not in storage) and sent on every
// state-changing request (api.js asks for it).

import { $, el } from './dom.js';
import { ApiError, api, connectSession, describe } from './api.js';
import { t, word } from './i18n.js';
import { scopeLabel } from './registry.js';

/**
 * @typedef {{ name: string, role: string, scope: string[], permissions: string[] }} User
 */

/** Who is logged in, from POST /v1/login or GET /v1/me. */
export const session = {
  /** @type {User | null} */
  user: null,
  csrf: '',
  ending: false,
};

/**
 * Whether the logged-in user has `permission` (`read_map`, `act_escalations`, ...).
 * @param {string} permission
 * @returns {boolean}
 */
export const can = (permission) => Boolean(session.user && session.user.permissions.includes(permission));

// A note for the login form that survives the reload of endSession.
const NOTE_KEY = 'posbon.login.note';

/**
 * Takes who is logged in from the server's answer (and its CSRF token).
 * @param {any} body
 */
export function setUser(body) {
  const b = body && typeof body === 'object' ? body : {};
  /** @param {unknown} v */
  const list = (v) => (Array.isArray(v) ? v.map(String) : []);
  session.user = {
    name: String(b.name ?? ''),
    role: String(b.role ?? ''),
    scope: list(b.scope),
    permissions: list(b.permissions),
  };
  if (typeof b.csrf === 'string' && b.csrf) session.csrf = b.csrf;
}

/**
 * Asks the server who this session is now, and for a current CSRF token.
 * @returns {Promise<void>}
 */
export async function refreshSession() {
  const { body } = await api('/v1/me');
  setUser(body);
  renderWho();
}

connectSession({
  csrf: () => session.csrf,
  active: () => Boolean(session.user),
  expired: () => endSession(t('page.session_ended')),
  refresh: refreshSession,
});

// ---------------------------------------------------------------- banner

// The banner: one line per source, replaced when the same source fails again.
/** @type {Map<string, string>} */
const banner = new Map();

/**
 * Shows `message` in the banner as the error of `source` (replacing its last one).
 * @param {string} source
 * @param {string} message
 */
export function showError(source, message) {
  if (session.ending) return;
  banner.set(source, message);
  renderBanner();
}

/**
 * Takes the error of `source` off the banner.
 * @param {string} source
 */
export function clearError(source) {
  if (banner.delete(source)) renderBanner();
}

/** Draws the banner (shown only while someone is logged in). */
export function renderBanner() {
  const box = $('errors');
  box.replaceChildren(...[...banner.values()].map((m) => el('p', { text: m })));
  box.hidden = banner.size === 0 || !session.user;
}

// ---------------------------------------------------------------- header

/** Shows who is logged in, their role and scope, in the header. */
export function renderWho() {
  const u = session.user;
  if (!u) return;
  $('who-name').textContent = u.name;
  $('who-role').textContent = word(u.role);
  const scope = $('who-scope');
  scope.textContent = u.scope.length ? u.scope.map(scopeLabel).join(', ') : t('page.whole_country');
  scope.title = u.scope.length ? t('page.scope_title', { scopes: u.scope.join(', ') }) : t('page.scope_title_all');
  $('who').dataset.name = u.name;
  $('who').dataset.role = u.role;
}

// ---------------------------------------------------------------- signed out

/**
 * Shows the login form, and nothing of the application.
 * @param {string} [note] why (logged out, session ended), shown above the form
 */
export function showSignedOut(note) {
  document.body.dataset.auth = 'out';
  for (const id of ['main', 'views-nav', 'who', 'conn', 'errors', 'boot']) $(id).hidden = true;
  $('login').hidden = false;
  const n = $('login-note');
  n.textContent = note || '';
  n.hidden = !note;
  $('login-submit').disabled = false;
  $('login-name').focus();
}

/** @type {(() => void)[]} */
const onEnd = [];

/**
 * Runs `fn` when the session ends, before the page reloads (to close
 * streams and stop timers).
 * @param {() => void} fn
 */
export function onSessionEnd(fn) {
  onEnd.push(fn);
}

/**
 * The session is over (logged out, or a request answered 401): nothing of
 * it stays on screen, and the page starts again from a clean load, which
 * shows the login form. Starting again, rather than emptying every part
 * by hand, is how no record, timer or stream of this session can outlive
 * it into the next user's.
 * @param {string} note for the login form
 */
export function endSession(note) {
  if (session.ending) return;
  session.ending = true;
  session.user = null;
  session.csrf = '';
  for (const fn of onEnd) fn();
  for (const d of document.querySelectorAll('dialog[open]')) /** @type {HTMLDialogElement} */ (d).close();
  for (const id of ['feed', 'feed-count', 'detail-body', 'map-layer', 'report-body', 'report-crumbs', 'report-dates', 'sql-result', 'mahalla-names']) {
    $(id).replaceChildren();
  }
  banner.clear();
  showSignedOut(note);
  try {
    sessionStorage.setItem(NOTE_KEY, note || '');
  } catch {
    // The note is lost with the reload; the form still shows.
  }
  location.reload();
}

// ---------------------------------------------------------------- login

// The countdown after a 429, while the form may not be tried again.
/** @type {ReturnType<typeof setInterval> | null} */
let loginWait = null;

/**
 * Why the login was refused, for people. The server's refusals with a code
 * the catalog knows are said in the page's language, others in the
 * server's words ("wrong name or password", "too many failed logins: ...").
 * @param {unknown} err
 * @returns {string}
 */
function refusal(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 429)) {
    if (err.code === 'invalid_credentials') return t('error.invalid_credentials');
    if (err.code === 'too_many_attempts' && err.retryAfter !== null) {
      return t('error.too_many_attempts', { seconds: err.retryAfter });
    }
    return err.message || (err.status === 401 ? t('page.login_wrong') : t('page.login_throttled'));
  }
  return t('page.login_failed', { reason: describe(err) });
}

/** @param {unknown} err */
function loginRefused(err) {
  const box = $('login-error');
  const text = refusal(err);
  box.textContent = text;
  box.hidden = false;
  box.dataset.code = (err instanceof ApiError && err.code) || '';
  if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
    // Wait as told, counting down, before the button works again.
    let left = Math.min(err.retryAfter, 3600);
    const submit = $('login-submit');
    const tick = () => {
      if (left <= 0) {
        if (loginWait) clearInterval(loginWait);
        loginWait = null;
        box.textContent = `${text}\n${t('page.login_try_now')}`;
        submit.disabled = false;
        return;
      }
      box.textContent = `${text}\n${t('page.login_wait', { seconds: left })}`;
      left -= 1;
    };
    if (loginWait) clearInterval(loginWait);
    submit.disabled = true;
    tick();
    loginWait = setInterval(tick, 1000);
  }
}

/** What happens once someone is logged in (main.js). @type {(body: any) => void} */
let signedIn = () => {};

/** @param {SubmitEvent} e */
async function login(e) {
  e.preventDefault();
  if (loginWait) return;
  const name = $('login-name').value.trim();
  const password = $('login-password').value;
  const box = $('login-error');
  if (!name || !password) {
    box.textContent = t('page.login_missing');
    box.hidden = false;
    (name ? $('login-password') : $('login-name')).focus();
    return;
  }
  box.hidden = true;
  $('login-note').hidden = true;
  $('login-submit').disabled = true;
  let body;
  try {
    body = (await api('/v1/login', { method: 'POST', body: JSON.stringify({ name, password }), auth: false })).body;
  } catch (err) {
    $('login-password').value = '';
    loginRefused(err);
    if (!loginWait) $('login-submit').disabled = false;
    $('login-password').focus();
    return;
  }
  signedIn(body);
}

async function logout() {
  const button = $('logout');
  button.disabled = true;
  try {
    await api('/v1/logout', { method: 'POST' });
  } catch (e) {
    if (session.ending) return; // a 401: the session was over already
    showError('logout', t('page.logout_failed', { reason: describe(e) }));
    button.disabled = false;
    return;
  }
  endSession(t('page.logged_out'));
}

/**
 * Wires the login form and the logout button; `then` runs with the server's
 * answer once someone logs in.
 * @param {(body: any) => void} then
 */
export function initLogin(then) {
  signedIn = then;
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
}

/**
 * At load: who the session is (GET /v1/me), or null after showing the login
 * form (with the note the last session left, or why it could not be checked).
 * @returns {Promise<any>}
 */
export async function checkSession() {
  let note = '';
  try {
    note = sessionStorage.getItem(NOTE_KEY) || '';
    sessionStorage.removeItem(NOTE_KEY);
    // The operator's name of earlier versions: the server records the user now.
    localStorage.removeItem('posbon.operator');
  } catch {
    // Storage is off: no note to show.
  }
  try {
    return (await api('/v1/me', { auth: false })).body;
  } catch (e) {
    const unreachable = !(e instanceof ApiError && e.status === 401);
    showSignedOut(unreachable ? t('page.session_unchecked', { reason: describe(e) }) : note);
    return null;
  }
}
