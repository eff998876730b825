// @ts-check
// The names of the regions, districts and mahallas (GET /v1/registry, and
// the mahallas of GET /v1/mahallas as the map draws them), for showing ids
// as people know them.

import { api } from './api.js';
import { t, word } from './i18n.js';

/**
 * @typedef {{ name: string, district_id?: string, region_id?: string, population?: number }} MahallaInfo
 * @typedef {{ name: string, region_id: string, mahallas?: unknown }} DistrictInfo
 * @typedef {{ id: string, name: string }} DistrictRef
 * @typedef {{ name: string, districts: DistrictRef[] }} RegionInfo
 */

/** What the page knows by id. */
export const names = {
  /** @type {Map<string, MahallaInfo>} */
  mahallas: new Map(),
  /** @type {Map<string, DistrictInfo>} */
  districts: new Map(),
  /** @type {Map<string, RegionInfo>} */
  regions: new Map(),
};

/** A mahalla's name, else its id. @param {string} id @returns {string} */
export const mahallaName = (id) => names.mahallas.get(id)?.name || id;
/** A district's name, else its id. @param {string} id @returns {string} */
export const districtName = (id) => names.districts.get(id)?.name || id;
/** A region's name, else its id. @param {string} id @returns {string} */
export const regionName = (id) => names.regions.get(id)?.name || id;

/**
 * Loads the regions and districts of GET /v1/registry.
 * @returns {Promise<void>}
 */
export async function loadRegistry() {
  const { body } = await api('/v1/registry');
  for (const r of body.regions || []) {
    names.regions.set(r.id, { name: r.name, districts: r.districts || [] });
    for (const d of r.districts || []) names.districts.set(d.id, { name: d.name, region_id: r.id, mahallas: d.mahallas });
  }
}

/**
 * A scope (`district:chilonzor`) as people say it, once the registry names it.
 * @param {string} scope
 * @returns {string}
 */
export function scopeLabel(scope) {
  const [kind, id] = String(scope).split(/:(.*)/s);
  if (id === undefined) return word(scope);
  if (kind === 'region') return t('page.scope_region', { name: regionName(id) });
  if (kind === 'district') return t('page.scope_district', { name: districtName(id) });
  if (kind === 'mahalla') return t('page.scope_mahalla', { name: mahallaName(id) });
  return t('page.scope_other', { name: id, kind: word(kind) });
}
