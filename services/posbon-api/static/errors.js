// @ts-check
// What went wrong in this page, kept for the tests and for whoever reads
// the console: `window.posbon.errors`. Imported first by main.js, so that the
// listeners are in place before any other module of the page runs. The
// entries are for machines and logs, in English, and are never translated.

/**
 * The page's own record: its errors, and measurements (timings) and the SQL
 * console's examples, which other modules add.
 * @typedef {{ errors: string[], timings?: Record<string, number>, sqlExamples?: { label: string, query: string }[] }} PageRecord
 */

/** @type {PageRecord} */
export const page = { errors: [] };

/** @type {any} */ (window).posbon = page;

window.addEventListener('error', (e) => {
  page.errors.push(String(e.message || e.error || e));
});
document.addEventListener('securitypolicyviolation', (e) => {
  page.errors.push(`content security policy: ${e.violatedDirective} blocked ${e.blockedURI || 'inline content'}`);
});
window.addEventListener('unhandledrejection', (e) => {
  const r = e.reason;
  page.errors.push(String((r && (r.message || r)) || 'unhandled rejection'));
});
