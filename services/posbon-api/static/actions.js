// @ts-check
// The act dialog: acknowledge, assign, resolve or mark a false alarm,
// posted to /v1/escalations/{id}/{action}. The server records who acts (the
// logged-in user); a refusal (409, someone acted first) or a bad request
// (400) is shown with the server's message.

import { $, announce } from './dom.js';
import { ApiError, api, describe } from './api.js';
import { fmtTime } from './format.js';
import { t, word } from './i18n.js';
import { feed, merge } from './feed.js';
import { mahallaName } from './registry.js';
import { session } from './session.js';

/** @type {{ id: string, action: string } | null} */
let acting = null;

/**
 * Opens the dialog for `action` on escalation `id` (one the feed shows).
 * @param {string} id
 * @param {string} action acknowledge, assign, resolve or false_alarm
 */
export function openAction(id, action) {
  const r = feed.records.get(id);
  if (!r) return;
  acting = { id, action };
  $('act-title').textContent = t('act.dialog_title', { action: t(`act.${action}`), mahalla: mahallaName(r.mahalla_id) });
  $('act-what').textContent = t('act.what', {
    level: word(r.level), rule: word(r.rule), status: word(r.status), opened: fmtTime(r.opened_at),
  });
  $('act-who').textContent = t('act.who', { name: session.user?.name || t('act.you') });
  $('act-assignee').value = '';
  $('act-note').value = '';
  $('act-assignee-row').hidden = action !== 'assign';
  $('act-error').hidden = true;
  $('act-confirm').textContent = t(`act.${action}`);
  $('act-confirm').disabled = false;
  const dialog = $('act-dialog');
  dialog.dataset.action = action;
  dialog.dataset.id = id;
  dialog.showModal();
  if (action === 'assign') $('act-assignee').focus();
  else $('act-note').focus();
}

/**
 * The escalation as it is now, from the server, into the feed.
 * @param {string} id
 * @param {string} how
 */
async function reload(id, how) {
  merge((await api(`/v1/escalations/${encodeURIComponent(id)}`)).body, how);
}

/** Wires the dialog's buttons. */
export function initActions() {
  const dialog = $('act-dialog');
  $('act-cancel').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { acting = null; });
  $('act-form').addEventListener('submit', async (/** @type {SubmitEvent} */ e) => {
    e.preventDefault();
    if (!acting) return;
    const { id, action } = acting;
    const error = $('act-error');
    // Who acts is the logged-in user: the server records it.
    /** @type {Record<string, string>} */
    const body = {};
    const note = $('act-note').value.trim();
    if (note) body.note = note;
    const assignee = $('act-assignee').value.trim();
    if (action === 'assign' && assignee) body.assignee = assignee;
    $('act-confirm').disabled = true;
    try {
      const res = await api(`/v1/escalations/${encodeURIComponent(id)}/${action}`, {
        method: 'POST', body: JSON.stringify(body),
      });
      merge(res.body, 'action');
      if (acting && acting.id === id) dialog.close();
      announce(t(`act.done_${action}`));
      // What may be done next is the server's to say: ask, when the
      // answer did not.
      if (!Array.isArray(res.body?.allowed_actions)) reload(id, 'action').catch(() => {});
    } catch (err) {
      error.textContent = describe(err);
      error.hidden = false;
      $('act-confirm').disabled = false;
      if (err instanceof ApiError && err.status === 409) {
        // Someone else acted first: show what it is now.
        try {
          await reload(id, 'updated');
        } catch {
          // The error shown is enough.
        }
      }
    }
  });
}
