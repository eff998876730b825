// @ts-check
// The page in Uzbek (Latin script), Russian and English. The messages come
// from the server (GET /i18n.json, the `page` catalog of posbon-i18n), in the
// language of `?lang=` in the page's address, else the one chosen on the page
// (kept in localStorage), else the browser's Accept-Language. The server
// checks that every language has every key; `t` shows a key it does not know
// as ⟦key⟧ rather than nothing, and the page's test fails on any ⟦.

/** @typedef {{ code: string, name: string }} Language */
/** @typedef {{ decimal: string, group: string, percent: string }} NumberSymbols */

/** @type {Record<string, string>} */
let messages = {};
let current = 'en';
/** @type {Language[]} */
let choices = [{ code: 'en', name: 'English' }];
/**
 * How the language writes numbers, from the server (posbon-i18n: the same
 * as the printable report), not from the browser's Intl data, which may
 * lack a language (Chromium's has no Uzbek number format).
 * @type {NumberSymbols}
 */
let symbols = { decimal: '.', group: ',', percent: '%' };
/** The time zone of the deployment's days, as the server names it. */
let zone = 'Asia/Tashkent';

const STORED = 'posbon.lang';

/** The BCP 47 tag for Intl formats in each language. */
const LOCALES = /** @type {Record<string, string>} */ ({ en: 'en-GB', uz: 'uz-Latn-UZ', ru: 'ru-RU' });

/** The language chosen by the address or on the page, if any. */
function wanted() {
  const fromUrl = new URLSearchParams(location.search).get('lang');
  if (fromUrl) return fromUrl;
  try {
    return localStorage.getItem(STORED) || '';
  } catch {
    return '';
  }
}

/**
 * Downloads the messages, sets `<html lang>` and translates the document.
 * A language the server refuses (a stale choice) falls back to the browser's.
 * @returns {Promise<void>}
 */
export async function loadMessages() {
  const choice = wanted();
  let res = await fetch(`/i18n.json${choice ? `?lang=${encodeURIComponent(choice)}` : ''}`, {
    credentials: 'same-origin', headers: { Accept: 'application/json' },
  });
  if (res.status === 400 && choice) {
    try { localStorage.removeItem(STORED); } catch { /* storage may be off */ }
    res = await fetch('/i18n.json', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  }
  if (!res.ok) throw new Error(`the page's messages could not be loaded (HTTP ${res.status})`);
  const body = await res.json();
  messages = body.messages || {};
  current = body.lang || 'en';
  choices = Array.isArray(body.languages) ? body.languages : choices;
  if (body.numbers && typeof body.numbers.decimal === 'string') symbols = body.numbers;
  if (typeof body.time_zone === 'string' && body.time_zone) zone = body.time_zone;
  document.documentElement.lang = current;
  apply(document);
}

/** The language the page speaks: `en`, `uz` or `ru`. */
export const lang = () => current;

/** The Intl locale of that language. */
export const locale = () => LOCALES[current] || 'en-GB';

/** The time zone every time on the page is shown in (posbon-model's local day). */
export const timeZone = () => zone;

/** How the page's language writes numbers. */
export const numberSymbols = () => symbols;

/**
 * A number as written in English (`12,345.5`, `-0.25`) in the page's
 * language: the group and decimal separators swapped for its own.
 * @param {string} english
 * @returns {string}
 */
export function localDigits(english) {
  return english.replace(/[,.]/g, (c) => (c === ',' ? symbols.group : symbols.decimal));
}

/** The languages the server offers, each in its own name. */
export const languages = () => choices;

/**
 * Keeps `code` as the page's language and reloads the page in it (the
 * session cookie survives; the view in the address too).
 * @param {string} code
 */
export function setLanguage(code) {
  try { localStorage.setItem(STORED, code); } catch { /* storage may be off */ }
  const url = new URL(location.href);
  if (url.searchParams.has('lang')) {
    url.searchParams.delete('lang');
    location.replace(url.toString());
  } else {
    // The same address: replacing it with itself while it has a #view
    // would only scroll, not load the page again.
    location.reload();
  }
}

/** Whether the catalog has `key`. @param {string} key */
export const has = (key) => Object.prototype.hasOwnProperty.call(messages, key);

/**
 * The message `key` with its placeholders filled in: `{name}` takes
 * `args.name`; `{n, plural, one {# day} other {# days}}` the arm of n's
 * plural category in this language, `#` standing for n in local digits.
 * @param {string} key
 * @param {Record<string, unknown>} [args]
 * @returns {string}
 */
export function t(key, args = {}) {
  const text = messages[key];
  if (text === undefined) return `⟦${key}⟧`;
  return render(text, args);
}

/**
 * An enumerated value (a level, status, tier, kind, rule, category) in
 * words: the catalog's `value.<v>`, else the value with spaces for `_`
 * (rule and category names come from configuration and data).
 * @param {unknown} v
 */
export function word(v) {
  const s = String(v ?? '');
  const key = `value.${s}`;
  return has(key) ? t(key) : s.replaceAll('_', ' ');
}

/** The index of the `}` closing the `{` at `open`. @param {string} s @param {number} open */
function closing(s, open) {
  let depth = 0;
  for (let i = open; i < s.length; i += 1) {
    if (s[i] === '{') depth += 1;
    else if (s[i] === '}') {
      depth -= 1;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** @param {number} n */
function pluralNumber(n) {
  return localDigits(Number.isInteger(n) ? n.toLocaleString('en-US') : String(n));
}

/**
 * @param {string} text
 * @param {Record<string, unknown>} args
 * @returns {string}
 */
function render(text, args) {
  let out = '';
  let rest = 0;
  for (;;) {
    const open = text.indexOf('{', rest);
    if (open < 0) break;
    const close = closing(text, open);
    if (close < 0) break;
    out += text.slice(rest, open);
    const inner = text.slice(open + 1, close);
    const comma = inner.indexOf(',');
    if (comma < 0) {
      const name = inner.trim();
      out += Object.prototype.hasOwnProperty.call(args, name) ? String(args[name]) : `{${name}}`;
    } else {
      const name = inner.slice(0, comma).trim();
      const arms = inner.slice(comma + 1).replace(/^\s*plural\s*,/, '');
      const n = Number(args[name]);
      const category = Number.isFinite(n) ? new Intl.PluralRules(locale()).select(n) : 'other';
      /** @type {Record<string, string>} */
      const found = {};
      let at = 0;
      for (;;) {
        const brace = arms.indexOf('{', at);
        if (brace < 0) break;
        const end = closing(arms, brace);
        if (end < 0) break;
        found[arms.slice(at, brace).trim()] = arms.slice(brace + 1, end);
        at = end + 1;
      }
      const arm = found[category] ?? found.other ?? '';
      out += render(arm.replaceAll('#', Number.isFinite(n) ? pluralNumber(n) : ''), args);
    }
    rest = close + 1;
  }
  return out + text.slice(rest);
}

/**
 * Translates the static document: `data-i18n="key"` sets an element's text,
 * `data-i18n-attr="placeholder=key;title=key"` its attributes.
 * @param {ParentNode} root
 */
export function apply(root) {
  for (const node of root.querySelectorAll('[data-i18n]')) {
    const key = /** @type {HTMLElement} */ (node).dataset.i18n;
    if (key) node.textContent = t(key);
  }
  for (const node of root.querySelectorAll('[data-i18n-attr]')) {
    const spec = /** @type {HTMLElement} */ (node).dataset.i18nAttr || '';
    for (const pair of spec.split(';')) {
      const [attr, key] = pair.split('=').map((s) => s.trim());
      if (attr && key) node.setAttribute(attr, t(key));
    }
  }
}
