// @ts-check
// Every request to the API goes through `api()`: JSON in and out, the
// session's CSRF token on every state-changing method, and the server's
// message in an ApiError on failure. The session itself (session.js) tells
// this module its CSRF token and what to do when the server says it ended,
// through `connectSession`.

import { t } from './i18n.js';

/** The HTTP statuses that have a word of their own (`status.s<code>`). */
const STATUS_WORDS = [400, 401, 403, 404, 406, 409, 413, 422, 429, 500, 503, 504];

/** An error answered by the API, with the server's own message. */
export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status, 0 when the server was not reached
   * @param {string} message the server's `detail` (or why it was not reached)
   * @param {string} [code] the server's machine-readable `code`
   * @param {number | null} [retryAfter] seconds to wait, from `Retry-After`
   */
  constructor(status, message, code, retryAfter) {
    super(message);
    this.status = status;
    this.code = code || '';
    // Seconds to wait, from `Retry-After` (429, 503), else null.
    this.retryAfter = retryAfter ?? null;
  }

  /**
   * For people: `Refused (409 conflict): acknowledged already`, the status
   * in words and the server's message as it wrote it.
   * @returns {string}
   */
  describe() {
    if (this.status === 0) return this.message;
    const what = STATUS_WORDS.includes(this.status) ? t(`status.s${this.status}`) : t('status.other');
    const args = { what, status: this.status, code: this.code, detail: this.message };
    return this.code ? t('page.api_error_code', args) : t('page.api_error', args);
  }
}

/**
 * A JSON.parse reviver that keeps integers above 2^53 exact (H3 cells as
 * UBIGINT in SQL results) as BigInt.
 * @param {string} key
 * @param {unknown} value
 * @param {{ source?: string }} [context]
 * @returns {unknown}
 */
export function bigReviver(key, value, context) {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && context && typeof context.source === 'string'
      && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

/**
 * `Retry-After` in seconds (a number of seconds or an HTTP date), else null.
 * @param {Headers} headers
 * @returns {number | null}
 */
export function retryAfterOf(headers) {
  const v = headers.get('Retry-After');
  if (!v) return null;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * What `api()` needs of the session.
 * @typedef {object} SessionHooks
 * @property {() => string} csrf the CSRF token of the session, '' if none
 * @property {() => boolean} active whether someone is logged in
 * @property {() => void} expired the server answered 401: the session is over
 * @property {() => Promise<void>} refresh asks /v1/me for a current CSRF token
 */

/** @type {SessionHooks} */
const hooks = {
  csrf: () => '',
  active: () => false,
  expired: () => {},
  refresh: async () => {},
};

/**
 * Tells `api()` about the session (called once, by session.js).
 * @param {Partial<SessionHooks>} h
 */
export function connectSession(h) {
  Object.assign(hooks, h);
}

const SAFE_METHODS = ['GET', 'HEAD', 'OPTIONS'];

/**
 * @typedef {RequestInit & { auth?: boolean, retried?: boolean }} ApiOptions
 * @typedef {{ body: any, headers: Headers, status: number }} ApiAnswer
 */

/**
 * A request to the API.
 *
 * A 401 means the session ended (expired, logged out elsewhere, the server
 * forgot it): the page leaves for the login form (the session's `expired`)
 * and the caller gets the error. `auth: false` is for the requests that
 * expect a 401 as an answer (the session check at load, the login itself).
 * A 403 `csrf` (a token older than the session) is retried once with the
 * token /v1/me gives now.
 * @param {string} path
 * @param {ApiOptions} [options]
 * @returns {Promise<ApiAnswer>}
 */
export async function api(path, options = {}) {
  const { auth = true, retried = false, ...init } = options;
  const method = String(init.method || 'GET').toUpperCase();
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (init.body !== undefined) headers['Content-Type'] = 'application/json';
  const csrf = hooks.csrf();
  if (!SAFE_METHODS.includes(method) && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, {
      ...init, method, credentials: 'same-origin', headers: { ...headers, .../** @type {Record<string, string>} */ (init.headers || {}) },
    });
  } catch (e) {
    throw new ApiError(0, t('page.unreachable', { reason: /** @type {Error} */ (e).message }));
  }
  const text = await res.text();
  /** @type {any} */
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text, /** @type {any} */ (bigReviver));
    } catch {
      body = text;
    }
  }
  if (!res.ok) {
    let message = res.statusText || t('page.request_failed');
    // Every error is an RFC 9457 problem document: `detail` for people, `code` for code.
    if (body && typeof body === 'object' && (body.detail || body.error)) message = String(body.detail || body.error);
    else if (typeof body === 'string' && body.trim()) message = body.trim().slice(0, 500);
    const code = body && typeof body === 'object' ? body.code || '' : '';
    if (auth && res.status === 401) {
      hooks.expired();
    } else if (auth && res.status === 403 && code === 'csrf' && !retried && hooks.active()) {
      await hooks.refresh();
      return api(path, { ...options, retried: true });
    }
    throw new ApiError(res.status, message, code, retryAfterOf(res.headers));
  }
  return { body, headers: res.headers, status: res.status };
}

/**
 * An error for people: the API's in its words, any other by its message.
 * @param {unknown} e
 * @returns {string}
 */
export function describe(e) {
  if (e instanceof ApiError) return e.describe();
  const m = /** @type {any} */ (e);
  return String((m && m.message) || m);
}
