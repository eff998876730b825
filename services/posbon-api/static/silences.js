// @ts-check
// Silences under the feed: the silences in force (GET /v1/silences), ended
// early with DELETE, and a form to silence a district (or one of its
// mahallas) for a while (POST /v1/silences) for those who may manage them.
// A silenced escalation is still recorded and shown; only its pages wait.

import { $, announce, el } from './dom.js';
import { api, describe } from './api.js';
import { fmtTime } from './format.js';
import { t, word } from './i18n.js';
import { can, clearError, showError } from './session.js';

const SILENCE_REFRESH_MS = 60000;

/** What a silence matches, by field, and the message that says it. */
const MATCHERS = /** @type {const} */ ([
  ['region', 'silences.by_region'],
  ['district', 'silences.by_district'],
  ['mahalla', 'silences.by_mahalla'],
  ['rule', 'silences.by_rule'],
  ['level', 'silences.by_level'],
]);

/**
 * What a silence matches, for people: `district chilonzor · level high`.
 * @param {any} s
 * @returns {string}
 */
function silenceScope(s) {
  const parts = [];
  for (const [key, message] of MATCHERS) {
    if (Array.isArray(s[key]) && s[key].length) {
      const values = key === 'level' ? s[key].map(word) : s[key];
      parts.push(t(message, { values: values.join(', ') }));
    }
  }
  return parts.length ? parts.join(' · ') : t('silences.everything');
}

async function loadSilences() {
  try {
    const { body } = await api('/v1/silences');
    /** @type {any[]} */
    const list = Array.isArray(body) ? body : [];
    $('silences-count').textContent = `(${list.length})`;
    $('silences-list').replaceChildren(...list.map((s) => {
      const started = Date.parse(s.starts_at) <= Date.now();
      const end = can('manage_silences')
        ? el('button', {
          type: 'button',
          class: 'quiet',
          onclick: async () => {
            try {
              await api(`/v1/silences/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
              announce(t('silences.ended', { id: s.id }));
            } catch (e) {
              showError('silences', t('silences.end_failed', { reason: describe(e) }));
            }
            loadSilences();
          },
        }, t('silences.end_now'))
        : null;
      const args = { start: fmtTime(s.starts_at), end: fmtTime(s.ends_at), by: s.created_by, reason: s.reason };
      return el('li', { dataset: { silence: s.id } },
        el('strong', { text: silenceScope(s) }),
        ` ${started ? t('silences.line', args) : t('silences.line_from', args)} `,
        ...(end ? [end] : []));
    }));
    clearError('silences');
  } catch (e) {
    showError('silences', t('silences.load_failed', { reason: describe(e) }));
  }
}

/** The durations of the form in words: `2 hours`, `3 days`. */
function nameDurations() {
  for (const o of /** @type {HTMLSelectElement} */ ($('s-for')).options) {
    const hours = Number(o.value);
    o.textContent = hours % 24 === 0 ? t('silences.for_days', { n: hours / 24 }) : t('silences.for_hours', { n: hours });
  }
}

/** Shows the silences to whoever reads escalations (and the form to who may manage them). */
export function initSilences() {
  if (!can('read_escalations')) return;
  $('silences').hidden = false;
  if (can('manage_silences')) {
    const form = $('silence-form');
    form.hidden = false;
    nameDurations();
    $('s-district').append(...[...$('f-district').options]
      .filter((o) => o.value)
      .map((o) => el('option', { value: o.value, text: o.textContent })));
    form.addEventListener('submit', async (/** @type {SubmitEvent} */ ev) => {
      ev.preventDefault();
      const box = $('silence-error');
      box.hidden = true;
      // The form is in Tashkent time (UTC+5, no daylight saving), as the page shows.
      const start = $('s-start').value ? new Date(`${$('s-start').value}:00+05:00`) : new Date();
      const hours = Number($('s-for').value);
      /** @type {Record<string, unknown>} */
      const body = {
        district: [$('s-district').value],
        ends_at: new Date(start.getTime() + hours * 3600000).toISOString(),
        reason: $('s-reason').value,
      };
      const mahalla = $('s-mahalla').value.trim();
      if (mahalla) body.mahalla = [mahalla];
      if ($('s-start').value) body.starts_at = start.toISOString();
      try {
        await api('/v1/silences', { method: 'POST', body: JSON.stringify(body) });
        form.reset();
        announce(t('silences.created'));
        loadSilences();
      } catch (e) {
        box.textContent = describe(e);
        box.hidden = false;
      }
    });
  }
  loadSilences();
  setInterval(loadSilences, SILENCE_REFRESH_MS);
}
