// @ts-check
// How values read on the page: times in local (Tashkent) time, numbers and shares
// in the page's language, relative times, and risk levels as badges.

import { el } from './dom.js';
import { localDigits, numberSymbols, t, timeZone, word } from './i18n.js';

/** The time zone of every time shown: the server's local day. */
export const TZ = timeZone;
/** The risk levels, lowest first. */
export const LEVELS = ['normal', 'elevated', 'high', 'critical'];
/** The statuses of an escalation. */
export const STATUSES = ['open', 'acknowledged', 'assigned', 'resolved', 'false_alarm'];

// The parts of a Tashkent time. The page writes times as `YYYY-MM-DD
// HH:MM:SS` in every language (unambiguous in all three), so the parts are
// taken in a fixed locale whose digits are Latin.
/** @type {Intl.DateTimeFormat | null} */
let dateTime = null;
let dateTimeZone = '';

/** The formatter of the server's zone (made again when the messages name another). */
function dateTimeFormat() {
  if (!dateTime || dateTimeZone !== timeZone()) {
    dateTimeZone = timeZone();
    dateTime = new Intl.DateTimeFormat('en-GB', {
      timeZone: timeZone(), year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
    });
  }
  return dateTime;
}

/**
 * @param {Date} date
 * @returns {Record<string, string>}
 */
function partsOf(date) {
  /** @type {Record<string, string>} */
  const p = {};
  for (const { type, value } of dateTimeFormat().formatToParts(date)) p[type] = value;
  return p;
}

/**
 * `2026-05-01 14:03:07` in Tashkent time; `—` for nothing.
 * @param {unknown} iso
 * @returns {string}
 */
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(/** @type {string} */ (iso));
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = partsOf(d);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/**
 * Today's date in Tashkent (or `offsetDays` from today), YYYY-MM-DD.
 * @param {number} [offsetDays]
 * @returns {string}
 */
export function tashkentDate(offsetDays = 0) {
  const p = partsOf(new Date(Date.now() + offsetDays * 86400000));
  return `${p.year}-${p.month}-${p.day}`;
}

/**
 * How long ago `iso` was: `just now`, `5 min ago`, `3 h ago`, `2 d ago`.
 * @param {unknown} iso
 * @returns {string}
 */
export function ago(iso) {
  const at = new Date(/** @type {string} */ (iso)).getTime();
  if (Number.isNaN(at)) return '';
  const s = Math.round((Date.now() - at) / 1000);
  if (s < -60) return t('page.ago_future');
  if (s < 60) return t('page.ago_now');
  if (s < 3600) return t('page.ago_minutes', { n: Math.floor(s / 60) });
  if (s < 86400) return t('page.ago_hours', { n: Math.floor(s / 3600) });
  return t('page.ago_days', { n: Math.floor(s / 86400) });
}

/** English number formats (grouped; up to 3 fraction digits), made once. */
const grouped = new Intl.NumberFormat('en-US');
const fraction = new Intl.NumberFormat('en-US', { maximumFractionDigits: 3 });

/**
 * A number in the page's language: integers grouped (`12,345` in English,
 * `12 345` in Uzbek and Russian), fractions to 3 digits, or exactly
 * `digits` fraction digits as `toFixed` rounds them (not grouped); `—` for
 * nothing, BigInts as they are. The separators are the server's
 * (posbon-i18n), as in the printable report.
 * @param {unknown} v
 * @param {number} [digits]
 * @returns {string}
 */
export function fmtNum(v, digits) {
  if (v === null || v === undefined || v === '') return '—';
  if (typeof v === 'bigint') return v.toString();
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  if (digits !== undefined) return localDigits(n.toFixed(digits));
  return localDigits((Number.isInteger(n) ? grouped : fraction).format(n));
}

/**
 * A share (0.123) as a percentage with one decimal: `12.3%` in English,
 * `12,3 %` in Uzbek and Russian.
 * @param {unknown} v
 * @returns {string}
 */
export function fmtShare(v) {
  if (v === null || v === undefined) return '—';
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return `${localDigits((n * 100).toFixed(1))}${numberSymbols().percent}`;
}

/**
 * A risk level the page knows, `normal` for anything else.
 * @param {unknown} l
 * @returns {string}
 */
export const levelOf = (l) => (LEVELS.includes(/** @type {string} */ (l)) ? /** @type {string} */ (l) : 'normal');

/**
 * A risk level as a coloured badge, in words.
 * @param {unknown} level
 * @returns {HTMLElement}
 */
export const badge = (level) => el('span', { class: `badge lvl-${levelOf(level)}`, text: level ? word(level) : t('page.unknown') });
