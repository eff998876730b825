// @ts-check
// The map: every mahalla of GET /v1/mahallas as an SVG path (longitude
// scaled by the cosine of the mean latitude; no tiles), filled by its risk
// level and outlined when an escalation is open, refreshed from GET /v1/risk.
// Wheel, buttons and keys zoom, dragging and arrow keys pan, a click or the
// "find mahalla" box picks a mahalla (main.js opens its panel).

import { $, el, svgEl } from './dom.js';
import { api, describe } from './api.js';
import { page } from './errors.js';
import { LEVELS, fmtTime, levelOf } from './format.js';
import { t, word } from './i18n.js';
import { districtName, names, regionName } from './registry.js';
import { clearError, showError } from './session.js';

/**
 * The map's state.
 * @typedef {object} MapState
 * @property {SVGSVGElement} svg
 * @property {SVGGElement} layer
 * @property {SVGGElement} shapes
 * @property {SVGGElement} labels
 * @property {number} width
 * @property {number} height
 * @property {{ k: number, x: number, y: number }} view
 * @property {Map<string, SVGPathElement>} paths mahalla id → its path
 * @property {Map<string, string>} levels mahalla id → level
 * @property {Map<string, number>} open mahalla id → open escalations
 * @property {string | null} selected
 */

/** @type {MapState} */
export const map = /** @type {any} */ ({
  svg: null,
  layer: null,
  shapes: null,
  labels: null,
  width: 1000,
  height: 1000,
  view: { k: 1, x: 0, y: 0 },
  paths: new Map(),
  levels: new Map(),
  open: new Map(),
  selected: null,
});

/** @param {any} geometry @returns {number[][][][]} */
function polygonsOf(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

/**
 * Draws the mahallas of GET /v1/mahallas (and learns their names).
 * @returns {Promise<void>}
 */
export async function loadMap() {
  $('map-status').textContent = t('map.loading');
  const t0 = performance.now();
  const { body } = await api('/v1/mahallas');
  const t1 = performance.now();
  const features = Array.isArray(body.features) ? body.features : [];
  let minLng = Infinity; let maxLng = -Infinity; let minLat = Infinity; let maxLat = -Infinity;
  for (const f of features) {
    for (const poly of polygonsOf(f.geometry)) {
      for (const [lng, lat] of poly[0] || []) {
        if (lng < minLng) minLng = lng;
        if (lng > maxLng) maxLng = lng;
        if (lat < minLat) minLat = lat;
        if (lat > maxLat) maxLat = lat;
      }
    }
  }
  if (!features.length || !Number.isFinite(minLng)) {
    $('map-status').textContent = t('map.empty');
    return;
  }
  // Equirectangular with longitude scaled by cos(mean latitude): true
  // shapes at city and country scale, no tiles needed.
  const c = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const W = 1000;
  const s = W / Math.max((maxLng - minLng) * c, 1e-9);
  const H = Math.max((maxLat - minLat) * s, 1);
  map.width = W;
  map.height = H;
  map.svg.setAttribute('viewBox', `0 0 ${W} ${H.toFixed(2)}`);
  /** @param {number[]} p */
  const pt = (p) => `${((p[0] - minLng) * c * s).toFixed(2)} ${((maxLat - p[1]) * s).toFixed(2)}`;
  const frag = document.createDocumentFragment();
  const options = document.createDocumentFragment();
  /** @type {Map<string, [number, number, number, string]>} district id → [sum x, sum y, mahallas, region id] */
  const centres = new Map();
  map.paths.clear();
  for (const f of features) {
    const p = f.properties || {};
    const id = String(p.id ?? f.id);
    let d = '';
    for (const poly of polygonsOf(f.geometry)) {
      for (const ring of poly) {
        if (ring.length) d += `M${ring.map(pt).join('L')}Z`;
      }
    }
    const outer = polygonsOf(f.geometry)[0]?.[0] || [];
    if (outer.length && p.district_id) {
      let x = 0; let y = 0;
      for (const q of outer) {
        x += (q[0] - minLng) * c * s;
        y += (maxLat - q[1]) * s;
      }
      const acc = centres.get(p.district_id) || [0, 0, 0, p.region_id];
      acc[0] += x / outer.length;
      acc[1] += y / outer.length;
      acc[2] += 1;
      centres.set(p.district_id, acc);
    }
    const level = levelOf(p.level);
    const path = /** @type {SVGPathElement} */ (svgEl('path', { d, class: `m lvl-${level}`, 'data-id': id }));
    const title = svgEl('title', {});
    path.append(title);
    frag.append(path);
    map.paths.set(id, path);
    names.mahallas.set(id, { name: p.name || id, district_id: p.district_id, region_id: p.region_id, population: p.population });
    setMahallaRisk(id, level, Number(p.open_escalations) || 0, false);
    options.append(el('option', { value: p.name ? `${p.name} (${id})` : id }));
  }
  map.shapes.replaceChildren(frag);
  map.labels.replaceChildren(...labelsOf(centres));
  map.svg.classList.toggle('one-region', names.regions.size <= 1);
  $('mahalla-names').replaceChildren(options);
  map.svg.dataset.mahallas = String(map.paths.size);
  resetView();
  updateMapStatus();
  // How long the map took (fetch + parse, then building the SVG), for
  // measurements; the first paint follows.
  const timings = { mapFetchMs: t1 - t0, mapBuildMs: performance.now() - t1, mahallas: map.paths.size };
  page.timings = timings;
  requestAnimationFrame(() => { Object.assign(timings, { mapPaintedMs: performance.now() - t0 }); });
}

/**
 * Names of the districts (and regions) at the mean of their mahallas' centres.
 * @param {Map<string, [number, number, number, string]>} centres
 * @returns {SVGElement[]}
 */
function labelsOf(centres) {
  const out = [];
  /** @type {Map<string, number[]>} */
  const regions = new Map();
  for (const [id, [x, y, n, region]] of centres) {
    out.push(label(districtName(id), x / n, y / n, 'lbl lbl-district'));
    const r = regions.get(region) || [0, 0, 0];
    r[0] += x; r[1] += y; r[2] += n;
    regions.set(region, r);
  }
  if (regions.size > 1) {
    for (const [id, [x, y, n]] of regions) out.push(label(regionName(id), x / n, y / n, 'lbl lbl-region'));
  }
  return out;
}

/**
 * @param {string} text @param {number} x @param {number} y @param {string} cls
 * @returns {SVGElement}
 */
function label(text, x, y, cls) {
  const node = svgEl('text', { x: x.toFixed(2), y: y.toFixed(2), class: cls });
  node.textContent = text;
  return node;
}

/**
 * Colours mahalla `id` by `level` and outlines it while `open` escalations
 * are open; `flash` highlights a rise.
 * @param {string} id
 * @param {string} level
 * @param {number} open
 * @param {boolean} flash
 */
export function setMahallaRisk(id, level, open, flash) {
  const path = map.paths.get(id);
  const before = map.levels.get(id) || 'normal';
  map.levels.set(id, level);
  map.open.set(id, open);
  if (!path) return;
  for (const l of LEVELS) path.classList.toggle(`lvl-${l}`, l === level);
  path.classList.toggle('open', open > 0);
  const info = names.mahallas.get(id);
  const args = { name: info?.name || id, level: word(level), open };
  /** @type {Node} */ (path.firstChild).textContent = open ? t('map.path_title_open', args) : t('map.path_title', args);
  if (flash && LEVELS.indexOf(level) > LEVELS.indexOf(before)) {
    path.classList.remove('flash');
    // Restart the animation.
    void path.getBBox();
    path.classList.add('flash');
  }
}

/** The line under the map: how many mahallas at each level, open escalations. */
export function updateMapStatus() {
  /** @type {Record<string, number>} */
  const counts = { normal: 0, elevated: 0, high: 0, critical: 0 };
  for (const id of map.paths.keys()) counts[map.levels.get(id) || 'normal'] += 1;
  let open = 0;
  for (const n of map.open.values()) open += n;
  $('map-status').textContent = t('map.status', {
    mahallas: map.paths.size,
    critical: counts.critical,
    high: counts.high,
    elevated: counts.elevated,
    open,
    time: fmtTime(new Date().toISOString()),
  });
}

/** Takes the current levels from GET /v1/risk (every 10 s). */
export async function refreshRisk() {
  if (!map.paths.size) return;
  try {
    const { body } = await api('/v1/risk');
    const risk = body.mahallas || {};
    for (const id of map.paths.keys()) {
      const r = risk[id];
      const level = levelOf(r?.level);
      const open = Number(r?.open_escalations) || 0;
      if (level !== (map.levels.get(id) || 'normal') || open !== (map.open.get(id) || 0)) {
        setMahallaRisk(id, level, open, true);
      }
    }
    updateMapStatus();
    clearError('risk');
  } catch (e) {
    showError('risk', t('map.refresh_failed', { reason: describe(e) }));
  }
}

function applyView() {
  const v = map.view;
  map.layer.setAttribute('transform', `translate(${v.x.toFixed(3)} ${v.y.toFixed(3)}) scale(${v.k.toFixed(5)})`);
  map.svg.dataset.zoom = v.k.toFixed(3);
  // Labels keep their size on screen.
  const m = map.svg.getScreenCTM();
  const perPixel = m && m.a ? 1 / m.a : 1;
  map.labels.setAttribute('font-size', ((13 * perPixel) / v.k).toFixed(4));
  map.svg.classList.toggle('zoomed', v.k >= 4);
  // Thousands of small shapes: hairline borders, or the borders hide the fills.
  map.svg.classList.toggle('dense', map.paths.size / (v.k * v.k) > 1500);
}

function clampView() {
  const v = map.view;
  const W = map.width; const H = map.height;
  v.x = Math.min(W / 2, Math.max(W / 2 - W * v.k, v.x));
  v.y = Math.min(H / 2, Math.max(H / 2 - H * v.k, v.y));
}

function resetView() {
  map.view = { k: 1, x: 0, y: 0 };
  applyView();
}

/**
 * Zooms by `factor` keeping the map point under (px, py) (viewBox units) in place.
 * @param {number} factor @param {number} px @param {number} py
 */
function zoomAt(factor, px, py) {
  const v = map.view;
  const k = Math.min(80, Math.max(1, v.k * factor));
  const f = k / v.k;
  v.x = px - (px - v.x) * f;
  v.y = py - (py - v.y) * f;
  v.k = k;
  clampView();
  applyView();
}

/** @param {number} clientX @param {number} clientY */
function toViewBox(clientX, clientY) {
  const m = map.svg.getScreenCTM();
  if (!m) return { x: map.width / 2, y: map.height / 2 };
  const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
  return { x: p.x, y: p.y };
}

/** @param {number} dx @param {number} dy */
function pan(dx, dy) {
  map.view.x += dx;
  map.view.y += dy;
  clampView();
  applyView();
}

/**
 * Zooms to mahalla `id`.
 * @param {string} id
 */
export function centreOn(id) {
  const path = map.paths.get(id);
  if (!path) return;
  const b = path.getBBox();
  const k = Math.min(40, Math.max(1, Math.min(map.width / Math.max(b.width, 1e-6), map.height / Math.max(b.height, 1e-6)) / 4));
  map.view = { k, x: map.width / 2 - (b.x + b.width / 2) * k, y: map.height / 2 - (b.y + b.height / 2) * k };
  clampView();
  applyView();
}

/**
 * Outlines mahalla `id` as the one picked (none for null).
 * @param {string | null} id
 */
export function selectPath(id) {
  if (map.selected) map.paths.get(map.selected)?.classList.remove('selected');
  map.selected = id;
  const path = id && map.paths.get(id);
  if (path) {
    path.classList.add('selected');
    map.shapes.append(path); // on top, so the outline shows
  }
}

/**
 * Sets up the map's controls; `pick(id, centre)` runs when a mahalla is
 * clicked (centre false) or found by the search box (centre true).
 * @param {(id: string, centre: boolean) => void} pick
 */
export function initMap(pick) {
  map.svg = $('map');
  map.layer = $('map-layer');
  map.shapes = /** @type {SVGGElement} */ (svgEl('g', { id: 'map-shapes' }));
  map.labels = /** @type {SVGGElement} */ (svgEl('g', { id: 'map-labels', 'aria-hidden': 'true' }));
  map.layer.replaceChildren(map.shapes, map.labels);
  const svg = map.svg;
  svg.addEventListener('wheel', (e) => {
    e.preventDefault();
    const p = toViewBox(e.clientX, e.clientY);
    zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), p.x, p.y);
  }, { passive: false });
  /** @type {{ id: number, x: number, y: number, vx: number, vy: number, scale: number, moved: boolean, target: EventTarget | null } | null} */
  let drag = null;
  svg.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    const m = svg.getScreenCTM();
    drag = { id: e.pointerId, x: e.clientX, y: e.clientY, vx: map.view.x, vy: map.view.y, scale: m ? 1 / m.a : 1, moved: false, target: e.target };
  });
  svg.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const dx = e.clientX - drag.x; const dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) > 4) {
      drag.moved = true;
      svg.setPointerCapture(e.pointerId);
      svg.classList.add('dragging');
    }
    if (drag.moved) {
      map.view.x = drag.vx + dx * drag.scale;
      map.view.y = drag.vy + dy * drag.scale;
      clampView();
      applyView();
    }
  });
  /** @param {PointerEvent} e */
  const end = (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const { moved, target } = drag;
    drag = null;
    svg.classList.remove('dragging');
    if (!moved && e.type === 'pointerup' && target instanceof SVGPathElement && target.dataset.id) {
      pick(target.dataset.id, false);
    }
  };
  svg.addEventListener('pointerup', end);
  svg.addEventListener('pointercancel', end);
  svg.addEventListener('keydown', (e) => {
    const step = (map.width / 10);
    const c = { x: map.width / 2, y: map.height / 2 };
    /** @type {Record<string, () => void>} */
    const keys = {
      '+': () => zoomAt(1.5, c.x, c.y), '=': () => zoomAt(1.5, c.x, c.y), '-': () => zoomAt(1 / 1.5, c.x, c.y),
      0: resetView, ArrowLeft: () => pan(step, 0), ArrowRight: () => pan(-step, 0),
      ArrowUp: () => pan(0, step), ArrowDown: () => pan(0, -step),
    };
    if (keys[e.key]) {
      e.preventDefault();
      keys[e.key]();
    }
  });
  window.addEventListener('resize', applyView);
  $('zoom-in').addEventListener('click', () => zoomAt(1.5, map.width / 2, map.height / 2));
  $('zoom-out').addEventListener('click', () => zoomAt(1 / 1.5, map.width / 2, map.height / 2));
  $('zoom-reset').addEventListener('click', resetView);
  $('find-form').addEventListener('submit', (/** @type {SubmitEvent} */ e) => {
    e.preventDefault();
    const q = $('find').value.trim();
    if (!q) return;
    const byId = q.match(/\(([^()]+)\)$/);
    let id = byId && names.mahallas.has(byId[1]) ? byId[1] : null;
    if (!id && names.mahallas.has(q)) id = q;
    if (!id) {
      const lower = q.toLowerCase();
      for (const [mid, m] of names.mahallas) {
        if (String(m.name).toLowerCase() === lower) { id = mid; break; }
      }
      if (!id) {
        for (const [mid, m] of names.mahallas) {
          if (String(m.name).toLowerCase().includes(lower)) { id = mid; break; }
        }
      }
    }
    if (id) pick(id, true);
    else $('map-status').textContent = t('map.no_match', { query: q });
  });
  $('detail-close').addEventListener('click', () => {
    $('detail').hidden = true;
    selectPath(null);
  });
}
