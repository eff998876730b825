// @ts-check
// Small helpers for building the page: elements by id, new HTML and SVG
// elements, the screen reader's announcer, and localStorage that may be off.

const SVG = 'http://www.w3.org/2000/svg';

/**
 * The element with this id (the page's own ids: they exist).
 * @param {string} id
 * @returns {any}
 */
export const $ = (id) => /** @type {any} */ (document.getElementById(id));

/**
 * @typedef {Node | string | number | null | undefined | false | any[]} Child
 */

/**
 * Builds an element: `el('li', {class: 'x', dataset: {id}}, child, 'text')`.
 * Attributes that are undefined, null or false are left out, `true` sets an
 * empty attribute, `on<event>` adds a listener, `text` sets the text.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...Child} children
 * @returns {HTMLElement}
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  for (const c of /** @type {any[]} */ (children).flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/**
 * Builds an SVG element with these attributes.
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @returns {SVGElement}
 */
export function svgEl(tag, attrs) {
  const node = /** @type {SVGElement} */ (document.createElementNS(SVG, tag));
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

/**
 * Says `text` to screen readers (the assertive live region).
 * @param {string} text
 */
export function announce(text) {
  const a = $('announcer');
  a.textContent = '';
  setTimeout(() => { a.textContent = text; }, 50);
}

/**
 * A value kept in localStorage, else `fallback` (also when storage is off).
 * @param {string} key
 * @param {string} fallback
 * @returns {string}
 */
export function localGet(key, fallback) {
  try {
    return localStorage.getItem(key) ?? fallback;
  } catch {
    return fallback;
  }
}

/**
 * Keeps a value in localStorage, if storage is on.
 * @param {string} key
 * @param {string} value
 */
export function localSet(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Not kept.
  }
}
