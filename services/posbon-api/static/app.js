// Posbon command centre: map of the mahallas by risk, live escalation feed,
// daily situation report and SQL console, behind a login (session cookie set
// by POST /v1/login, CSRF token in X-CSRF-Token on every state-changing
// request). Plain JavaScript, no framework, no network access beyond this
// origin. See services/posbon-api/src/page.rs.
'use strict';

(() => {
  // ---------------------------------------------------------------- basics

  const TZ = 'Asia/Tashkent';
  const LEVELS = ['normal', 'elevated', 'high', 'critical'];
  const STATUSES = ['open', 'acknowledged', 'assigned', 'resolved', 'false_alarm'];
  const ACTIONS = {
    acknowledge: { label: 'Acknowledge', done: 'acknowledged' },
    assign: { label: 'Assign', done: 'assigned' },
    resolve: { label: 'Resolve', done: 'resolved' },
    false_alarm: { label: 'False alarm', done: 'marked a false alarm' },
  };
  const RISK_REFRESH_MS = 10000;
  const MAX_FEED = 500;
  const SVG = 'http://www.w3.org/2000/svg';

  // What went wrong in this page, for people (the banner) and for tests.
  const page = { errors: [] };
  window.posbon = page;
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

  const $ = (id) => document.getElementById(id);

  /** Builds an element: el('li', {class: 'x', dataset: {id}}, child, 'text'). */
  function el(tag, attrs, ...children) {
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
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : String(c));
    }
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  /** An error answered by the API, with the server's own message. */
  class ApiError extends Error {
    constructor(status, message, code, retryAfter) {
      super(message);
      this.status = status;
      this.code = code || '';
      // Seconds to wait, from `Retry-After` (429, 503), else null.
      this.retryAfter = retryAfter ?? null;
    }
    describe() {
      if (this.status === 0) return this.message;
      const what = {
        400: 'Bad request', 401: 'Not logged in', 403: 'Not allowed', 404: 'Not found', 406: 'Not acceptable',
        409: 'Refused', 413: 'Too large', 422: 'Rejected', 429: 'Too many requests', 500: 'Server error',
        503: 'Unavailable', 504: 'Timed out',
      }[this.status] || 'Error';
      const code = this.code ? ` ${this.code}` : '';
      return `${what} (${this.status}${code}): ${this.message}`;
    }
  }

  // Keeps integers above 2^53 exact (H3 cells as UBIGINT in SQL results).
  function bigReviver(key, value, context) {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context && typeof context.source === 'string'
        && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  }

  /** `Retry-After` in seconds (a number of seconds or an HTTP date), else null. */
  function retryAfterOf(headers) {
    const v = headers.get('Retry-After');
    if (!v) return null;
    if (/^\d+$/.test(v.trim())) return Number(v.trim());
    const at = Date.parse(v);
    return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
  }

  const SAFE_METHODS = ['GET', 'HEAD', 'OPTIONS'];

  /**
   * Every request to the API goes through here: JSON in and out, the
   * session's CSRF token on every state-changing method, and the server's
   * message in an ApiError on failure.
   *
   * A 401 means the session ended (expired, logged out elsewhere, the server
   * forgot it): the page leaves for the login form (endSession) and the
   * caller gets the error. `auth: false` is for the requests that expect a
   * 401 as an answer (the session check at load, the login itself).
   * A 403 `csrf` (a token older than the session) is retried once with the
   * token /v1/me gives now.
   */
  async function api(path, options = {}) {
    const { auth = true, retried = false, ...init } = options;
    const method = String(init.method || 'GET').toUpperCase();
    const headers = { Accept: 'application/json' };
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    if (!SAFE_METHODS.includes(method) && session.csrf) headers['X-CSRF-Token'] = session.csrf;
    let res;
    try {
      res = await fetch(path, {
        ...init, method, credentials: 'same-origin', headers: { ...headers, ...(init.headers || {}) },
      });
    } catch (e) {
      throw new ApiError(0, `cannot reach the server (${e.message})`);
    }
    const text = await res.text();
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text, bigReviver);
      } catch {
        body = text;
      }
    }
    if (!res.ok) {
      let message = res.statusText || 'request failed';
      // Every error is an RFC 9457 problem document: `detail` for people, `code` for code.
      if (body && typeof body === 'object' && (body.detail || body.error)) message = String(body.detail || body.error);
      else if (typeof body === 'string' && body.trim()) message = body.trim().slice(0, 500);
      const code = body && typeof body === 'object' ? body.code || '' : '';
      if (auth && res.status === 401) {
        endSession('Your session has ended. Log in again.');
      } else if (auth && res.status === 403 && code === 'csrf' && !retried && session.user) {
        await refreshSession();
        return api(path, { ...options, retried: true });
      }
      throw new ApiError(res.status, message, code, retryAfterOf(res.headers));
    }
    return { body, headers: res.headers, status: res.status };
  }

  function describe(e) {
    return e instanceof ApiError ? e.describe() : String((e && e.message) || e);
  }

  // The banner: one line per source, replaced when the same source fails again.
  const banner = new Map();
  function showError(source, message) {
    if (session.ending) return;
    banner.set(source, message);
    renderBanner();
  }
  function clearError(source) {
    if (banner.delete(source)) renderBanner();
  }
  function renderBanner() {
    const box = $('errors');
    box.replaceChildren(...[...banner.values()].map((m) => el('p', { text: m })));
    box.hidden = banner.size === 0 || !session.user;
  }

  function announce(text) {
    const a = $('announcer');
    a.textContent = '';
    setTimeout(() => { a.textContent = text; }, 50);
  }

  // ---------------------------------------------------------------- formats

  const dateTime = new Intl.DateTimeFormat('en-GB', {
    timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  });

  function partsOf(date) {
    const p = {};
    for (const { type, value } of dateTime.formatToParts(date)) p[type] = value;
    return p;
  }

  /** `2026-05-01 14:03:07` in Tashkent time. */
  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const p = partsOf(d);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }

  /** Today's date in Tashkent, YYYY-MM-DD. */
  function tashkentDate(offsetDays = 0) {
    const p = partsOf(new Date(Date.now() + offsetDays * 86400000));
    return `${p.year}-${p.month}-${p.day}`;
  }

  function ago(iso) {
    const t = new Date(iso).getTime();
    if (Number.isNaN(t)) return '';
    const s = Math.round((Date.now() - t) / 1000);
    if (s < -60) return 'in the future';
    if (s < 60) return 'just now';
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function fmtNum(v, digits) {
    if (v === null || v === undefined || v === '') return '—';
    if (typeof v === 'bigint') return v.toString();
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    if (digits !== undefined) return n.toFixed(digits);
    return Number.isInteger(n) ? n.toLocaleString('en-GB') : n.toLocaleString('en-GB', { maximumFractionDigits: 3 });
  }

  function fmtShare(v) {
    if (v === null || v === undefined) return '—';
    const n = Number(v);
    return Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : String(v);
  }

  const words = (s) => String(s ?? '').replaceAll('_', ' ');
  const levelOf = (l) => (LEVELS.includes(l) ? l : 'normal');
  const badge = (level) => el('span', { class: `badge lvl-${levelOf(level)}`, text: level || 'unknown' });

  // ---------------------------------------------------------------- session

  // Who is logged in, from POST /v1/login or GET /v1/me. The session itself is
  // an HttpOnly cookie this script never sees; the CSRF token is kept here
  // only (not in storage) and sent on every state-changing request.
  const session = { user: null, csrf: '', ending: false };
  const can = (permission) => Boolean(session.user && session.user.permissions.includes(permission));

  // A note for the login form that survives the reload of endSession.
  const NOTE_KEY = 'posbon.login.note';

  function setUser(body) {
    const b = body && typeof body === 'object' ? body : {};
    const list = (v) => (Array.isArray(v) ? v.map(String) : []);
    session.user = {
      name: String(b.name ?? ''),
      role: String(b.role ?? ''),
      scope: list(b.scope),
      permissions: list(b.permissions),
    };
    if (typeof b.csrf === 'string' && b.csrf) session.csrf = b.csrf;
  }

  /** Asks the server who this session is now, and for a current CSRF token. */
  async function refreshSession() {
    const { body } = await api('/v1/me');
    setUser(body);
    renderWho();
  }

  /** `district:chilonzor` as people say it, once the registry names it. */
  function scopeLabel(scope) {
    const [kind, id] = String(scope).split(/:(.*)/s);
    if (id === undefined) return words(scope);
    if (kind === 'region') return `${regionName(id)} (region)`;
    if (kind === 'district') return `${districtName(id)} (district)`;
    if (kind === 'mahalla') return `${mahallaName(id)} (mahalla)`;
    return `${id} (${words(kind)})`;
  }

  function renderWho() {
    const u = session.user;
    if (!u) return;
    $('who-name').textContent = u.name;
    $('who-role').textContent = words(u.role);
    const scope = $('who-scope');
    scope.textContent = u.scope.length ? u.scope.map(scopeLabel).join(', ') : 'whole country';
    scope.title = u.scope.length ? `Scope: ${u.scope.join(', ')}` : 'Scope: every region';
    $('who').dataset.name = u.name;
    $('who').dataset.role = u.role;
  }

  /** Shows the login form, and nothing of the application. */
  function showSignedOut(note) {
    document.body.dataset.auth = 'out';
    for (const id of ['main', 'views-nav', 'who', 'conn', 'errors', 'boot']) $(id).hidden = true;
    $('login').hidden = false;
    const n = $('login-note');
    n.textContent = note || '';
    n.hidden = !note;
    $('login-submit').disabled = false;
    $('login-name').focus();
  }

  function showSignedIn() {
    document.body.dataset.auth = 'in';
    for (const id of ['login', 'boot']) $(id).hidden = true;
    for (const id of ['main', 'views-nav', 'who', 'conn']) $(id).hidden = false;
    $('login-password').value = '';
    $('login-error').hidden = true;
    renderWho();
    applyPermissions();
    renderBanner();
  }

  /**
   * The session is over (logged out, or a request answered 401): nothing of
   * it stays on screen, and the page starts again from a clean load, which
   * shows the login form. Starting again, rather than emptying every part
   * by hand, is how no record, timer or stream of this session can outlive
   * it into the next user's.
   */
  function endSession(note) {
    if (session.ending) return;
    session.ending = true;
    session.user = null;
    session.csrf = '';
    if (feed.es) feed.es.close();
    feed.es = null;
    clearTimeout(feed.retry);
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
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

  // Seconds until the login form may be tried again after a 429.
  let loginWait = null;

  function loginRefused(err) {
    const box = $('login-error');
    let text;
    if (err instanceof ApiError && (err.status === 401 || err.status === 429)) {
      // The server's own words: "wrong name or password", "too many failed logins: ...".
      text = err.message || (err.status === 401 ? 'Wrong name or password.' : 'Too many attempts.');
    } else {
      text = `Login failed: ${describe(err)}`;
    }
    box.textContent = text;
    box.hidden = false;
    box.dataset.code = (err instanceof ApiError && err.code) || '';
    if (err instanceof ApiError && err.status === 429 && err.retryAfter) {
      // Wait as told, counting down, before the button works again.
      let left = Math.min(err.retryAfter, 3600);
      const submit = $('login-submit');
      const tick = () => {
        if (left <= 0) {
          clearInterval(loginWait);
          loginWait = null;
          box.textContent = `${text}\nYou can try again now.`;
          submit.disabled = false;
          return;
        }
        box.textContent = `${text}\nThe form works again in ${left} s.`;
        left -= 1;
      };
      clearInterval(loginWait);
      submit.disabled = true;
      tick();
      loginWait = setInterval(tick, 1000);
    }
  }

  async function login(e) {
    e.preventDefault();
    if (loginWait) return;
    const name = $('login-name').value.trim();
    const password = $('login-password').value;
    const box = $('login-error');
    if (!name || !password) {
      box.textContent = 'Enter your name and password.';
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
      showError('logout', `Could not log out: ${describe(e)}`);
      button.disabled = false;
      return;
    }
    endSession('You have logged out.');
  }

  let started = false;
  function signedIn(body) {
    setUser(body);
    showSignedIn();
    if (!started) {
      started = true;
      start();
    }
  }

  /** At load: the page as it was when the session is still valid, else the login form. */
  async function boot() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    let note = '';
    try {
      note = sessionStorage.getItem(NOTE_KEY) || '';
      sessionStorage.removeItem(NOTE_KEY);
      // The operator's name of earlier versions: the server records the user now.
      localStorage.removeItem('posbon.operator');
    } catch {
      // Storage is off: no note to show.
    }
    let me;
    try {
      me = (await api('/v1/me', { auth: false })).body;
    } catch (e) {
      const unreachable = !(e instanceof ApiError && e.status === 401);
      showSignedOut(unreachable ? `The session could not be checked: ${describe(e)}` : note);
      return;
    }
    signedIn(me);
  }

  // ---------------------------------------------------------------- views

  const views = ['map', 'report', 'sql'];
  // A view shows when the user has one of these permissions (the server
  // refuses the rest anyway: hiding is only so as not to offer it).
  const VIEW_NEEDS = { map: ['read_map', 'read_escalations'], report: ['read_reports'], sql: ['read_sql'] };
  const viewAllowed = (v) => VIEW_NEEDS[v].some(can);
  const viewStarted = new Set();

  function showView() {
    if (!session.user) return;
    const wanted = location.hash.slice(1);
    const name = views.includes(wanted) && viewAllowed(wanted) ? wanted : views.find(viewAllowed);
    // A view this user may not open (an old link, a bookmark): say which one shows.
    if (name && wanted && wanted !== name) history.replaceState(null, '', `#${name}`);
    for (const v of views) $(`view-${v}`).hidden = v !== name;
    for (const a of document.querySelectorAll('.top nav a')) {
      if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (name && !viewStarted.has(name)) {
      viewStarted.add(name);
      if (name === 'report') startReport();
      if (name === 'sql') startSql();
    }
  }

  /** Hides what this user's permissions do not allow. */
  function applyPermissions() {
    for (const a of document.querySelectorAll('.top nav a')) a.hidden = !viewAllowed(a.dataset.view);
    $('map-pane').hidden = !can('read_map');
    $('feed-pane').hidden = !can('read_escalations');
    $('view-map').classList.toggle('single', !can('read_map') || !can('read_escalations'));
    $('report-generate').hidden = !can('generate_reports');
    const none = !views.some(viewAllowed);
    const note = $('no-access');
    note.textContent = none
      ? `This account (${words(session.user.role)}) has no view on this page: it may not read the map, the escalations, the reports or the SQL console.`
      : '';
    note.hidden = !none;
  }

  // ---------------------------------------------------------------- registry

  const names = {
    mahallas: new Map(), // id -> {name, district_id, region_id, population}
    districts: new Map(), // id -> {name, region_id}
    regions: new Map(), // id -> {name, districts: [...]}
  };
  const mahallaName = (id) => names.mahallas.get(id)?.name || id;
  const districtName = (id) => names.districts.get(id)?.name || id;
  const regionName = (id) => names.regions.get(id)?.name || id;

  async function loadRegistry() {
    const { body } = await api('/v1/registry');
    for (const r of body.regions || []) {
      names.regions.set(r.id, { name: r.name, districts: r.districts || [] });
      for (const d of r.districts || []) names.districts.set(d.id, { name: d.name, region_id: r.id, mahallas: d.mahallas });
    }
    fillRegionFilter();
    fillReportScopes();
  }

  // ---------------------------------------------------------------- map

  const map = {
    svg: null, layer: null, shapes: null, labels: null, width: 1000, height: 1000,
    view: { k: 1, x: 0, y: 0 },
    paths: new Map(), // id -> path
    levels: new Map(), // id -> level
    open: new Map(), // id -> open escalations
    selected: null,
  };

  function polygonsOf(geometry) {
    if (!geometry) return [];
    if (geometry.type === 'Polygon') return [geometry.coordinates];
    if (geometry.type === 'MultiPolygon') return geometry.coordinates;
    return [];
  }

  async function loadMap() {
    $('map-status').textContent = 'Loading the mahallas…';
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
      $('map-status').textContent = 'The registry has no mahallas to draw.';
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
    const pt = (p) => `${((p[0] - minLng) * c * s).toFixed(2)} ${((maxLat - p[1]) * s).toFixed(2)}`;
    const frag = document.createDocumentFragment();
    const options = document.createDocumentFragment();
    const centres = new Map(); // district id -> [sum x, sum y, mahallas]
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
      const path = svgEl('path', { d, class: `m lvl-${level}`, 'data-id': id });
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
    page.timings = { mapFetchMs: t1 - t0, mapBuildMs: performance.now() - t1, mahallas: map.paths.size };
    requestAnimationFrame(() => { page.timings.mapPaintedMs = performance.now() - t0; });
    // Names arrived: label what the feed shows already.
    for (const r of feed.records.values()) refreshItem(r);
  }

  /** Names of the districts (and regions) at the mean of their mahallas' centres. */
  function labelsOf(centres) {
    const out = [];
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

  function label(text, x, y, cls) {
    const t = svgEl('text', { x: x.toFixed(2), y: y.toFixed(2), class: cls });
    t.textContent = text;
    return t;
  }

  function setMahallaRisk(id, level, open, flash) {
    const path = map.paths.get(id);
    const before = map.levels.get(id) || 'normal';
    map.levels.set(id, level);
    map.open.set(id, open);
    if (!path) return;
    for (const l of LEVELS) path.classList.toggle(`lvl-${l}`, l === level);
    path.classList.toggle('open', open > 0);
    const info = names.mahallas.get(id);
    path.firstChild.textContent = `${info?.name || id}: ${level}${open ? `, ${open} open escalation${open > 1 ? 's' : ''}` : ''}`;
    if (flash && LEVELS.indexOf(level) > LEVELS.indexOf(before)) {
      path.classList.remove('flash');
      // Restart the animation.
      void path.getBBox();
      path.classList.add('flash');
    }
  }

  function updateMapStatus() {
    const counts = { normal: 0, elevated: 0, high: 0, critical: 0 };
    for (const id of map.paths.keys()) counts[map.levels.get(id) || 'normal'] += 1;
    let open = 0;
    for (const n of map.open.values()) open += n;
    $('map-status').textContent = `${map.paths.size} mahallas: ${counts.critical} critical, ${counts.high} high, `
      + `${counts.elevated} elevated; ${open} open escalation${open === 1 ? '' : 's'}. Levels as of ${fmtTime(new Date().toISOString())} (Tashkent time).`;
  }

  async function refreshRisk() {
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
      showError('risk', `Map levels could not be refreshed: ${describe(e)}`);
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

  /** Zooms by `factor` keeping the map point under (px, py) (viewBox units) in place. */
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

  function toViewBox(clientX, clientY) {
    const m = map.svg.getScreenCTM();
    if (!m) return { x: map.width / 2, y: map.height / 2 };
    const p = new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
    return { x: p.x, y: p.y };
  }

  function pan(dx, dy) {
    map.view.x += dx;
    map.view.y += dy;
    clampView();
    applyView();
  }

  function centreOn(id) {
    const path = map.paths.get(id);
    if (!path) return;
    const b = path.getBBox();
    const k = Math.min(40, Math.max(1, Math.min(map.width / Math.max(b.width, 1e-6), map.height / Math.max(b.height, 1e-6)) / 4));
    map.view = { k, x: map.width / 2 - (b.x + b.width / 2) * k, y: map.height / 2 - (b.y + b.height / 2) * k };
    clampView();
    applyView();
  }

  function initMap() {
    map.svg = $('map');
    map.layer = $('map-layer');
    map.shapes = svgEl('g', { id: 'map-shapes' });
    map.labels = svgEl('g', { id: 'map-labels', 'aria-hidden': 'true' });
    map.layer.replaceChildren(map.shapes, map.labels);
    const svg = map.svg;
    svg.addEventListener('wheel', (e) => {
      e.preventDefault();
      const p = toViewBox(e.clientX, e.clientY);
      zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), p.x, p.y);
    }, { passive: false });
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
    const end = (e) => {
      if (!drag || e.pointerId !== drag.id) return;
      const { moved, target } = drag;
      drag = null;
      svg.classList.remove('dragging');
      if (!moved && e.type === 'pointerup' && target instanceof SVGPathElement && target.dataset.id) {
        showMahalla(target.dataset.id, false);
      }
    };
    svg.addEventListener('pointerup', end);
    svg.addEventListener('pointercancel', end);
    svg.addEventListener('keydown', (e) => {
      const step = (map.width / 10);
      const c = { x: map.width / 2, y: map.height / 2 };
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
    $('find-form').addEventListener('submit', (e) => {
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
      if (id) showMahalla(id, true);
      else $('map-status').textContent = `No mahalla matches "${q}".`;
    });
    $('detail-close').addEventListener('click', () => {
      $('detail').hidden = true;
      selectPath(null);
    });
  }

  function selectPath(id) {
    if (map.selected) map.paths.get(map.selected)?.classList.remove('selected');
    map.selected = id;
    const path = id && map.paths.get(id);
    if (path) {
      path.classList.add('selected');
      map.shapes.append(path); // on top, so the outline shows
    }
  }

  // ---------------------------------------------------------------- mahalla detail

  let detailToken = 0;
  async function showMahalla(id, centre) {
    selectPath(id);
    if (centre) centreOn(id);
    const token = ++detailToken;
    const box = $('detail');
    box.hidden = false;
    box.dataset.id = id;
    $('detail-title').textContent = mahallaName(id);
    const body = $('detail-body');
    body.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
    let d;
    try {
      d = (await api(`/v1/mahallas/${encodeURIComponent(id)}?hours=24&events=100`)).body;
    } catch (e) {
      if (token === detailToken) body.replaceChildren(el('p', { class: 'error-box', text: describe(e) }));
      return;
    }
    if (token !== detailToken) return;
    $('detail-title').textContent = d.name || id;
    const fact = (k, v) => el('div', {}, el('dt', { text: k }), el('dd', {}, v));
    const win = d.window || {};
    const facts = el('dl', { class: 'facts' },
      fact('Level', badge(d.level)),
      fact('Score', fmtNum(d.score, 2)),
      fact('At this level since', d.since ? fmtTime(d.since) : '—'),
      fact('District', districtName(d.district_id)),
      fact('Region', regionName(d.region_id)),
      fact('Population', fmtNum(d.population)),
      fact('Inspector', d.inspector || '—'),
      fact('Events, last 24 h', fmtNum(win.events)),
      fact('Id', el('code', { text: d.id || id })));
    const hot = table({
      caption: 'Hot cells (Getis-Ord Gi*)',
      empty: 'No significant clustering.',
      columns: [
        { key: 'cell', label: 'Cell (H3)', fmt: (v) => el('code', { text: String(v) }) },
        { key: 'gi_z', label: 'Gi* z', num: true, fmt: (v) => fmtNum(v, 2) },
        { key: 'events', label: 'Events', num: true },
      ],
      rows: Array.isArray(d.hot_cells) ? d.hot_cells : [],
    });
    const escs = Array.isArray(d.escalations) ? d.escalations : [];
    const escTable = table({
      caption: 'Escalations',
      empty: 'None recorded.',
      columns: [
        { key: 'opened_at', label: 'Opened', fmt: fmtTime },
        { key: 'level', label: 'Level', fmt: badge },
        { key: 'rule', label: 'Rule' },
        { key: 'status', label: 'Status', fmt: words },
        { key: 'score', label: 'Score', num: true, fmt: (v) => fmtNum(v, 2) },
        { key: 'id', label: 'Id', fmt: (v) => el('code', { text: v }) },
      ],
      rows: escs,
    });
    const events = Array.isArray(d.events) ? d.events : [];
    const evTable = table({
      caption: `Recent events (${events.length} of ${fmtNum(win.events)} in the last 24 h)`,
      empty: 'No events in the last 24 hours.',
      columns: [
        { key: 'time', label: 'Occurred (Tashkent)' },
        { key: 'kind', label: 'Kind', fmt: words },
        { key: 'what', label: 'What', fmt: words },
        { key: 'detail', label: 'Detail' },
        { key: 'source', label: 'Source' },
        { key: 'id', label: 'Id', fmt: (v) => el('code', { text: v }) },
      ],
      rows: events.map(eventRow),
    });
    body.replaceChildren(facts, hot, escTable, evTable);
  }

  function eventRow(enriched) {
    const e = (enriched && enriched.event) || {};
    let what = ''; let detail = '';
    if (e.kind === 'incident') {
      what = e.category;
      detail = `severity ${e.severity ?? '—'}${e.status ? `, ${words(e.status)}` : ''}`;
    } else if (e.kind === 'camera_alert') {
      what = e.detection;
      detail = `confidence ${fmtNum(e.confidence, 2)}, camera ${e.camera_id ?? '—'}`;
    } else if (e.kind === 'fraud_flag') {
      what = e.scheme;
      detail = `${fmtNum(e.amount_uzs)} UZS${e.channel ? `, ${e.channel}` : ''}`;
    }
    return { time: fmtTime(e.occurred_at), kind: e.kind, what, detail, source: e.source, id: e.id };
  }

  // ---------------------------------------------------------------- tables

  /**
   * A table: columns [{key, label, num, fmt, type}], rows (objects or
   * arrays), sortable by clicking a header.
   */
  function table({ caption, columns, rows, empty, sortable = true }) {
    const wrap = el('div', { class: 'table-wrap' });
    const t = el('table', { class: 'data' });
    if (caption) t.append(el('caption', { text: caption }));
    if (!rows.length) {
      wrap.append(t, el('p', { class: 'muted', text: empty || 'No rows.' }));
      return wrap;
    }
    let order = rows.map((r, i) => i);
    let sortBy = null; let desc = false;
    const value = (r, c) => (typeof c.get === 'function' ? c.get(r) : r[c.key]);
    const head = el('tr');
    const tbody = el('tbody');
    const draw = () => {
      tbody.replaceChildren(...order.map((i) => {
        const r = rows[i];
        return el('tr', {}, columns.map((c) => {
          const v = value(r, c);
          if (v === null || v === undefined) {
            // A column that says what its missing values mean (zCell: "not
            // enough history") is asked; others show null.
            if (c.fmtMissing) return el('td', { class: 'null' }, c.fmtMissing(r));
            return el('td', { class: 'null', text: c.fmt ? '—' : 'null' });
          }
          const shown = c.fmt ? c.fmt(v, r) : (c.num ? fmtNum(v) : (typeof v === 'object' ? JSON.stringify(v, (k, x) => (typeof x === 'bigint' ? x.toString() : x)) : String(v)));
          return el('td', { class: c.num ? 'num' : '' }, shown);
        }));
      }));
    };
    columns.forEach((c, ci) => {
      const label = [c.label, c.type ? el('span', { class: 'type', text: c.type }) : null];
      if (!sortable) {
        head.append(el('th', { scope: 'col', class: c.num ? 'num' : '' }, label));
        return;
      }
      const th = el('th', { scope: 'col', 'aria-sort': 'none', class: c.num ? 'num' : '' });
      th.append(el('button', {
        type: 'button',
        title: `Sort by ${c.label}`,
        onclick: () => {
          desc = sortBy === ci ? !desc : Boolean(c.num);
          sortBy = ci;
          const missing = (v) => v === null || v === undefined;
          const cmp = (a, b) => {
            const x = value(rows[a], c); const y = value(rows[b], c);
            if (x === y) return 0;
            if (typeof x === 'number' || typeof x === 'bigint') return x < y ? -1 : 1;
            return String(x).localeCompare(String(y));
          };
          // Missing values (a withheld z score, a NULL) last either way.
          const ordered = (a, b) => {
            const ma = missing(value(rows[a], c)); const mb = missing(value(rows[b], c));
            if (ma || mb) return ma === mb ? 0 : (ma ? 1 : -1);
            return desc ? -cmp(a, b) : cmp(a, b);
          };
          order = rows.map((r, i) => i).sort(ordered);
          for (const h of head.children) h.setAttribute('aria-sort', 'none');
          th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
          draw();
        },
      }, label));
      head.append(th);
    });
    t.append(el('thead', {}, head), tbody);
    draw();
    wrap.append(t);
    return wrap;
  }

  // ---------------------------------------------------------------- live feed

  const feed = {
    records: new Map(), // id -> record
    items: new Map(), // id -> li
    seq: 0, // last ALERTS sequence seen
    es: null,
    retry: null,
    generation: 0,
  };

  function fillRegionFilter() {
    const region = $('f-region');
    region.replaceChildren(el('option', { value: '', text: 'all' }),
      ...[...names.regions].map(([id, r]) => el('option', { value: id, text: r.name })));
    region.value = localGet('posbon.f.region', '');
    if (region.value !== localGet('posbon.f.region', '')) region.value = '';
    fillDistrictFilter();
    $('f-district').value = localGet('posbon.f.district', '');
    $('f-level').value = localGet('posbon.f.level', '');
    $('f-closed').checked = localGet('posbon.f.closed', '') === '1';
  }

  function fillDistrictFilter() {
    const region = $('f-region').value;
    const district = $('f-district');
    const keep = district.value;
    const options = [el('option', { value: '', text: 'all' })];
    for (const [rid, r] of names.regions) {
      if (region && rid !== region) continue;
      for (const d of r.districts) options.push(el('option', { value: d.id, text: d.name }));
    }
    district.replaceChildren(...options);
    district.value = keep;
    if (district.value !== keep) district.value = '';
  }

  function localGet(key, fallback) {
    try {
      return localStorage.getItem(key) ?? fallback;
    } catch {
      return fallback;
    }
  }
  function localSet(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      // Not kept.
    }
  }

  function feedFilters() {
    const p = new URLSearchParams();
    const region = $('f-region').value;
    const district = $('f-district').value;
    const level = $('f-level').value;
    if (region) p.set('region', region);
    if (district) p.set('district', district);
    if (level) p.set('min_level', level);
    return p;
  }

  function setConn(state, text) {
    const c = $('conn');
    c.className = `conn conn-${state}`;
    c.textContent = text || state;
    c.dataset.state = state;
  }

  /** Lists the escalations, then follows the feed from the listing's sequence. */
  async function loadFeed() {
    const generation = ++feed.generation;
    if (feed.es) feed.es.close();
    feed.es = null;
    clearTimeout(feed.retry);
    setConn('connecting');
    const p = feedFilters();
    p.set('limit', '300');
    if (!$('f-closed').checked) p.set('status', 'open,acknowledged,assigned');
    let res;
    try {
      res = await api(`/v1/escalations?${p}`);
    } catch (e) {
      if (generation !== feed.generation) return;
      showError('feed', `Escalations could not be listed: ${describe(e)}. Retrying in 5 s.`);
      setConn('offline');
      feed.retry = setTimeout(loadFeed, 5000);
      return;
    }
    if (generation !== feed.generation) return;
    clearError('feed');
    feed.seq = Number(res.headers.get('X-Alerts-Sequence')) || 0;
    feed.records.clear();
    feed.items.clear();
    $('feed').replaceChildren();
    for (const r of Array.isArray(res.body) ? res.body : []) merge(r, 'listed');
    updateFeedCount();
    if (can('read_feed')) openFeed(generation);
    else setConn('off', 'not live');
  }

  function openFeed(generation) {
    if (generation !== feed.generation) return;
    const p = feedFilters();
    p.set('since', String(feed.seq));
    const es = new EventSource(`/v1/feed?${p}`);
    feed.es = es;
    es.onopen = () => {
      if (feed.es !== es) return;
      setConn('live');
      clearError('feed');
    };
    es.onerror = () => {
      if (feed.es !== es) return;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused the stream: the browser will not retry by itself.
        es.close();
        feed.es = null;
        setConn('offline');
        showError('feed', 'The live feed was refused; retrying in 5 s.');
        clearTimeout(feed.retry);
        feed.retry = setTimeout(() => openFeed(generation), 5000);
        // EventSource does not tell why: a session that ended is one reason,
        // and the session check then leaves for the login form.
        refreshSession().catch(() => {});
      } else {
        // EventSource reconnects with Last-Event-ID by itself.
        setConn('reconnecting', 'reconnecting');
      }
    };
    const onMessage = (type) => (ev) => {
      if (feed.es !== es) return;
      const seq = Number(ev.lastEventId);
      if (Number.isFinite(seq) && seq > feed.seq) feed.seq = seq;
      let record;
      try {
        record = JSON.parse(ev.data);
      } catch {
        page.errors.push(`unreadable feed message ${ev.lastEventId}`);
        return;
      }
      merge(record, type);
    };
    es.addEventListener('opened', onMessage('opened'));
    es.addEventListener('updated', onMessage('updated'));
  }

  const steps = (r) => (Array.isArray(r.history) ? r.history.length : 0);
  const isClosed = (r) => r.status === 'resolved' || r.status === 'false_alarm';
  const sortKey = (r) => [String(r.opened_at || ''), Number(r.alert_sequence) || 0];
  function newer(a, b) {
    const [ta, sa] = sortKey(a); const [tb, sb] = sortKey(b);
    const x = new Date(ta).getTime(); const y = new Date(tb).getTime();
    return x !== y ? x > y : sa > sb;
  }

  /**
   * Merges a record by id: a version with fewer audit steps than the one
   * shown is an older one (a replay after a reconnect) and is ignored.
   * `how`: listed, opened, updated (from the feed) or action (our own).
   */
  function merge(r, how) {
    if (!r || typeof r.id !== 'string') return;
    const old = feed.records.get(r.id);
    if (old && steps(old) > steps(r)) return;
    if (old && steps(old) === steps(r) && old.updated_at === r.updated_at && old.status === r.status) return;
    feed.records.set(r.id, r);
    const li = renderItem(r);
    const existing = feed.items.get(r.id);
    if (existing) {
      const focused = existing.contains(document.activeElement) && document.activeElement.dataset.action;
      existing.replaceWith(li);
      if (focused) li.querySelector(`button[data-action="${focused}"]`)?.focus();
    } else {
      const list = $('feed');
      let before = null;
      for (const other of list.children) {
        const o = feed.records.get(other.dataset.id);
        if (o && newer(r, o)) { before = other; break; }
      }
      list.insertBefore(li, before);
      while (list.children.length > MAX_FEED) {
        const last = list.lastElementChild;
        feed.items.delete(last.dataset.id);
        feed.records.delete(last.dataset.id);
        last.remove();
      }
    }
    feed.items.set(r.id, li);
    if (how !== 'listed') {
      li.classList.add(old ? 'flash-updated' : 'flash-new');
      if (!old) {
        announce(`New ${r.level} escalation: ${mahallaName(r.mahalla_id)}, ${words(r.rule)}`);
        const open = (map.open.get(r.mahalla_id) || 0) + (isClosed(r) ? 0 : 1);
        const current = map.levels.get(r.mahalla_id) || 'normal';
        const level = LEVELS.indexOf(r.level) > LEVELS.indexOf(current) ? levelOf(r.level) : current;
        setMahallaRisk(r.mahalla_id, level, open, true);
        updateMapStatus();
      } else if (how === 'updated' && old.status !== r.status) {
        announce(`${mahallaName(r.mahalla_id)}: escalation ${words(r.status)}`);
      }
    }
    updateFeedCount();
  }

  function refreshItem(r) {
    const li = feed.items.get(r.id);
    if (li) {
      const fresh = renderItem(r);
      li.replaceWith(fresh);
      feed.items.set(r.id, fresh);
    }
  }

  function updateFeedCount() {
    let open = 0;
    for (const r of feed.records.values()) if (r.status === 'open') open += 1;
    const n = feed.records.size;
    $('feed-count').textContent = n
      ? `${n} escalation${n === 1 ? '' : 's'} shown, ${open} waiting for acknowledgement.`
      : 'No escalations match these filters. New ones appear here as they open.';
  }

  /** Which actions make sense in a status (the server decides; this guides). */
  function allowed(status, action) {
    switch (status) {
      case 'open': return action !== 'resolve';
      case 'acknowledged': return action !== 'acknowledge';
      case 'assigned': return action !== 'acknowledge';
      default: return false;
    }
  }

  function renderItem(r) {
    const level = levelOf(r.level);
    const m = names.mahallas.get(r.mahalla_id);
    const li = el('li', {
      class: `esc lvl-${level}${isClosed(r) ? ' closed' : ''}`,
      dataset: { id: r.id, status: r.status, mahalla: r.mahalla_id },
      'aria-label': `${level} escalation in ${mahallaName(r.mahalla_id)}, ${words(r.status)}`,
    });
    const head = el('div', { class: 'esc-head' },
      badge(r.level),
      can('read_map')
        ? el('button', {
          type: 'button', class: 'linklike mahalla', title: 'Show this mahalla on the map',
          onclick: () => showMahalla(r.mahalla_id, true),
        }, mahallaName(r.mahalla_id))
        : el('strong', { class: 'mahalla', text: mahallaName(r.mahalla_id) }),
      r.previous_level && r.previous_level !== r.level ? el('span', { class: 'muted', text: `from ${r.previous_level}` }) : null,
      el('span', { class: `esc-status st-${STATUSES.includes(r.status) ? r.status : 'open'}`, text: words(r.status) }));
    const meta = el('div', { class: 'esc-meta' },
      `${districtName(r.district_id || m?.district_id)} · ${regionName(r.region_id || m?.region_id)} · ${words(r.rule)} · score ${fmtNum(r.score, 2)}`,
      el('br'),
      'opened ', el('time', { datetime: r.opened_at, class: 'ago', dataset: { at: r.opened_at } }, `${fmtTime(r.opened_at)} (${ago(r.opened_at)})`),
      ` · notified: ${words(r.tier || '—')}`,
      r.assignee ? ` · assigned to ${r.assignee}` : '');
    const counts = Object.entries(r.counts || {});
    const countLine = el('div', { class: 'esc-counts' },
      counts.map(([k, v]) => el('span', {}, `${words(k)} ×${v}`)),
      Array.isArray(r.evidence) ? el('span', {}, `${r.evidence.length} evidence event${r.evidence.length === 1 ? '' : 's'}`) : null,
      Array.isArray(r.hot_cells) && r.hot_cells.length ? el('span', {}, `${r.hot_cells.length} hot cell${r.hot_cells.length === 1 ? '' : 's'}`) : null);
    const actions = el('div', { class: 'esc-actions', role: 'group', 'aria-label': 'Actions' },
      Object.entries(ACTIONS).map(([action, a]) => el('button', {
        type: 'button',
        dataset: { action },
        disabled: !allowed(r.status, action),
        title: allowed(r.status, action) ? `${a.label} this escalation` : `Not possible while ${words(r.status)}`,
        onclick: () => openAction(r.id, action),
      }, a.label)));
    const history = el('details', {},
      el('summary', {}, `History (${steps(r)})`),
      el('ol', {}, (r.history || []).map((h) => el('li', {},
        `${fmtTime(h.at)} ${words(h.kind)} by ${h.by} → ${words(h.status)}`,
        h.assignee ? ` (to ${h.assignee})` : '',
        h.tier && !h.receiver ? ` (notified ${words(h.tier)})` : '',
        h.receiver ? ` (${h.receiver}, step ${h.step})` : '',
        h.note ? `: “${h.note}”` : ''))),
      el('p', {}, 'Id ', el('code', { text: r.id })));
    li.append(...[head, meta, countLine, isClosed(r) || !can('act_escalations') ? null : actions, history].filter(Boolean));
    return li;
  }

  function initFeed() {
    $('f-region').addEventListener('change', () => {
      fillDistrictFilter();
      saveFilters();
      loadFeed();
    });
    for (const id of ['f-district', 'f-level', 'f-closed']) {
      $(id).addEventListener('change', () => {
        saveFilters();
        loadFeed();
      });
    }
    $('filters').addEventListener('submit', (e) => e.preventDefault());
    setInterval(() => {
      for (const t of document.querySelectorAll('#feed time.ago')) {
        t.textContent = `${fmtTime(t.dataset.at)} (${ago(t.dataset.at)})`;
      }
    }, 30000);
  }

  function saveFilters() {
    localSet('posbon.f.region', $('f-region').value);
    localSet('posbon.f.district', $('f-district').value);
    localSet('posbon.f.level', $('f-level').value);
    localSet('posbon.f.closed', $('f-closed').checked ? '1' : '');
  }

  // ---------------------------------------------------------------- actions

  let acting = null;
  function openAction(id, action) {
    const r = feed.records.get(id);
    if (!r) return;
    acting = { id, action };
    $('act-title').textContent = `${ACTIONS[action].label}: ${mahallaName(r.mahalla_id)}`;
    $('act-what').textContent = `${r.level} escalation (${words(r.rule)}), ${words(r.status)}, opened ${fmtTime(r.opened_at)}.`;
    $('act-who').textContent = `Recorded in the audit trail as ${session.user?.name || 'you'}.`;
    $('act-assignee').value = '';
    $('act-note').value = '';
    $('act-assignee-row').hidden = action !== 'assign';
    $('act-error').hidden = true;
    $('act-confirm').textContent = ACTIONS[action].label;
    $('act-confirm').disabled = false;
    const dialog = $('act-dialog');
    dialog.dataset.action = action;
    dialog.dataset.id = id;
    dialog.showModal();
    if (action === 'assign') $('act-assignee').focus();
    else $('act-note').focus();
  }

  function initActions() {
    const dialog = $('act-dialog');
    $('act-cancel').addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => { acting = null; });
    $('act-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!acting) return;
      const { id, action } = acting;
      const error = $('act-error');
      // Who acts is the logged-in user: the server records it.
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
        announce(`Escalation ${ACTIONS[action].done}.`);
      } catch (err) {
        error.textContent = describe(err);
        error.hidden = false;
        $('act-confirm').disabled = false;
        if (err instanceof ApiError && err.status === 409) {
          // Someone else acted first: show what it is now.
          try {
            merge((await api(`/v1/escalations/${encodeURIComponent(id)}`)).body, 'updated');
          } catch {
            // The error shown is enough.
          }
        }
      }
    });
  }

  // ---------------------------------------------------------------- daily report

  const report = { scope: 'nation', started: false, token: 0 };

  function fillReportScopes() {
    const sel = $('report-scope');
    const keep = sel.value || report.scope;
    const options = [el('option', { value: 'nation', text: 'nation' })];
    for (const [rid, r] of names.regions) {
      const group = el('optgroup', { label: r.name });
      group.append(el('option', { value: `region:${rid}`, text: `${r.name} (region)` }));
      for (const d of r.districts) group.append(el('option', { value: `district:${d.id}`, text: d.name }));
      options.push(group);
    }
    options.push(el('option', { value: 'unassigned', text: 'outside every mahalla' }));
    sel.replaceChildren(...options);
    setScopeSelect(keep);
  }

  function setScopeSelect(scope) {
    const sel = $('report-scope');
    if (![...sel.options].some((o) => o.value === scope)) {
      const [kind, id] = scope.split(':');
      const label = kind === 'mahalla' ? `${mahallaName(id)} (mahalla)` : scope;
      sel.append(el('option', { value: scope, text: label }));
    }
    sel.value = scope;
  }

  function reportUrl(format) {
    const p = new URLSearchParams({ date: $('report-date').value, scope: report.scope });
    if (format) p.set('format', format);
    return `/v1/reports/daily?${p}`;
  }

  function updateReportLinks() {
    $('report-print').href = reportUrl('html');
    $('report-csv').href = reportUrl('csv');
  }

  async function startReport() {
    $('report-date').value = tashkentDate(-1);
    // A user limited to a scope starts on (the first of) it, not on the nation.
    const own = session.user?.scope?.[0];
    if (own && report.scope === 'nation') {
      report.scope = own;
      setScopeSelect(own);
    }
    $('report-form').addEventListener('submit', (e) => {
      e.preventDefault();
      report.scope = $('report-scope').value || 'nation';
      loadReport();
    });
    $('report-scope').addEventListener('change', () => {
      report.scope = $('report-scope').value || 'nation';
      loadReport();
    });
    $('report-date').addEventListener('change', () => loadReport());
    $('report-generate').addEventListener('click', generateReport);
    try {
      const { body } = await api('/v1/reports/daily/dates');
      const dates = Array.isArray(body?.dates) ? [...body.dates].sort().reverse() : [];
      if (dates.length) $('report-date').value = dates[0];
      $('report-dates').replaceChildren(
        dates.length ? el('span', { class: 'muted', text: 'Reports:' }) : el('span', { class: 'muted', text: can('generate_reports') ? 'No report stored yet: pick a date and generate one.' : 'No report stored yet.' }),
        ...dates.slice(0, 21).map((d) => el('button', {
          type: 'button', onclick: () => { $('report-date').value = d; loadReport(); },
        }, d)));
    } catch (e) {
      $('report-dates').replaceChildren(el('span', { class: 'muted', text: `Dates unavailable: ${describe(e)}` }));
    }
    loadReport();
  }

  async function generateReport() {
    const date = $('report-date').value;
    if (!date) return;
    const status = $('report-status');
    status.textContent = `Generating the report of ${date}…`;
    report.token += 1; // what was loading is stale now
    $('report-body').replaceChildren();
    $('report-crumbs').replaceChildren();
    $('report-generate').disabled = true;
    try {
      await api(`/v1/reports/daily?${new URLSearchParams({ date })}`, { method: 'POST' });
      status.textContent = `Report of ${date} generated.`;
      await loadReport();
    } catch (e) {
      status.textContent = '';
      $('report-body').replaceChildren(el('p', { class: 'error-box', text: `The report could not be generated: ${describe(e)}` }));
    } finally {
      $('report-generate').disabled = false;
    }
  }

  function drill(scope) {
    report.scope = scope;
    setScopeSelect(scope);
    loadReport();
  }

  async function loadReport() {
    const date = $('report-date').value;
    const body = $('report-body');
    updateReportLinks();
    if (!date) {
      body.replaceChildren(el('p', { class: 'muted', text: 'Choose a date.' }));
      return;
    }
    const token = ++report.token;
    $('report-status').textContent = 'Loading…';
    let view;
    try {
      view = (await api(reportUrl())).body;
    } catch (e) {
      if (token !== report.token) return;
      $('report-status').textContent = '';
      $('report-crumbs').replaceChildren();
      const msg = e instanceof ApiError && e.status === 404
        ? `${e.message}.${can('generate_reports') ? ' Use “Generate now” to compute it from the stored events.' : ''}`
        : describe(e);
      body.replaceChildren(el('p', { class: 'error-box', text: msg }));
      return;
    }
    if (token !== report.token) return;
    $('report-status').textContent = '';
    renderReport(view || {}, token);
  }

  // A change score; withheld (null) when the baseline had too few days with
  // data.
  function zCell(v) {
    if (v === null || v === undefined) return el('span', { class: 'muted', title: 'not enough history: too few days with data before this day' }, '—');
    const n = Number(v);
    return el('span', { class: n >= 2 ? 'zpos' : (n <= -2 ? 'zneg' : '') }, fmtNum(n, 2));
  }

  // A change score with what it rests on: the expected count and how many
  // of the baseline's days had data, or why it is withheld.
  function zCard(z, expected, days, of) {
    const cover = days === null || days === undefined ? '' : `${fmtNum(days)} of ${of} days with data`;
    if (z === null || z === undefined) {
      return el('span', {}, 'not enough history', el('div', { class: 'muted', text: cover }));
    }
    const basis = expected === null || expected === undefined ? cover : `expected ${fmtNum(Number(expected), 1)}; ${cover}`;
    return el('span', {}, zCell(z), el('div', { class: 'muted', text: basis }));
  }

  const ROW_COLUMNS = [
    { key: 'events', label: 'Events', num: true },
    { key: 'incidents', label: 'Incidents', num: true },
    { key: 'camera_alerts', label: 'Camera alerts', num: true },
    { key: 'fraud_flags', label: 'Fraud flags', num: true },
    { key: 'offences', label: 'Offences', num: true },
    { key: 'cyber_share', label: 'Cyber share', num: true, fmt: fmtShare },
    { key: 'harm', label: 'Harm', num: true },
    { key: 'z7', label: 'z vs 7 d', num: true, fmt: zCell, fmtMissing: () => zCell(null) },
    { key: 'z28', label: 'z vs 28 d', num: true, fmt: zCell, fmtMissing: () => zCell(null) },
    { key: 'camera_alerts_z7', label: 'Alerts z vs 7 d', num: true, fmt: zCell, fmtMissing: () => zCell(null) },
    { key: 'escalations_opened', label: 'Esc. opened', num: true },
    { key: 'escalations_closed', label: 'Esc. closed', num: true },
    // a mahalla's crime-free streak (null for larger areas)
    { key: 'crime_free_days', label: 'Days since offence', num: true, fmt: (v, r) => (r.last_offence ? fmtNum(v) : `≥ ${fmtNum(v)}`), fmtMissing: () => '—' },
  ];

  function scopeOf(row) {
    if (!row || !row.scope) return null;
    if (row.scope === 'nation' || row.scope === 'unassigned') return row.scope;
    return `${row.scope}:${row.scope_id}`;
  }

  function renderReport(view, token) {
    const s = view.summary || {};
    // Breadcrumbs: nation › region › district › mahalla.
    const crumbs = [el('button', { type: 'button', class: 'linklike', onclick: () => drill('nation') }, 'Nation')];
    if (s.region_id && s.scope !== 'region') crumbs.push(' › ', el('button', { type: 'button', class: 'linklike', onclick: () => drill(`region:${s.region_id}`) }, regionName(s.region_id)));
    if (s.district_id && s.scope === 'mahalla') crumbs.push(' › ', el('button', { type: 'button', class: 'linklike', onclick: () => drill(`district:${s.district_id}`) }, districtName(s.district_id)));
    if (s.scope && s.scope !== 'nation') crumbs.push(' › ', el('strong', { text: s.name || s.scope_id }));
    $('report-crumbs').replaceChildren(...crumbs);

    const card = (k, v) => el('div', { class: 'card' }, el('div', { class: 'k', text: k }), el('div', { class: 'v' }, v));
    const free = view.crime_free || {};
    const cards = el('div', { class: 'cards' },
      card('Events', fmtNum(s.events)),
      card('Offences', fmtNum(s.offences)),
      card('Incidents', fmtNum(s.incidents)),
      card('Camera alerts', fmtNum(s.camera_alerts)),
      card('Fraud flags', fmtNum(s.fraud_flags)),
      card('Cybercrime share', fmtShare(s.cyber_share)),
      card('Harm', fmtNum(s.harm)),
      card('z vs 7 days', zCard(s.z7, s.baseline7, s.baseline7_days, 7)),
      card('z vs 28 days', zCard(s.z28, s.baseline28, s.baseline28_days, 28)),
      card('Camera alerts z vs 7 days', zCard(s.camera_alerts_z7, s.camera_alerts_baseline7, s.baseline7_days, 7)),
      card('Escalations opened / closed', `${fmtNum(s.escalations_opened)} / ${fmtNum(s.escalations_closed)}`),
      card('Crime-free mahallas', `${fmtNum(free.count ?? s.crime_free_mahallas)} of ${fmtNum(s.mahallas)}`));
    const heading = el('h3', {}, `${s.name || 'Report'}, ${view.date || $('report-date').value}`,
      el('span', { class: 'muted' }, ` (${view.time_zone || TZ} day)`));

    const parts = Array.isArray(view.parts) ? view.parts : [];
    const partKind = parts.find((p) => p.scope !== 'unassigned')?.scope;
    const partsTable = table({
      caption: partKind ? `${{ region: 'Regions', district: 'Districts', mahalla: 'Mahallas' }[partKind] || 'Parts'} of ${s.name || 'the scope'}` : 'Parts',
      empty: 'No parts below this scope.',
      columns: [
        {
          key: 'name', label: 'Name',
          fmt: (v, r) => (r.scope === 'unassigned' ? 'outside every mahalla'
            : el('button', { type: 'button', class: 'linklike', title: 'Open this scope', onclick: () => drill(scopeOf(r)) }, v || r.scope_id)),
        },
        { key: 'crime_free_mahallas', label: 'Crime-free', num: true, get: (r) => (r.scope === 'mahalla' ? (r.offences === 0 ? 'yes' : 'no') : r.crime_free_mahallas), fmt: (v) => String(v) },
        ...ROW_COLUMNS,
      ],
      rows: parts,
    });

    const cats = table({
      caption: 'By kind and category',
      empty: 'No events.',
      columns: [
        { key: 'kind', label: 'Kind', fmt: words },
        { key: 'category', label: 'Category', fmt: words },
        { key: 'events', label: 'Events', num: true },
        { key: 'harm', label: 'Harm', num: true },
      ],
      rows: Array.isArray(view.categories) ? view.categories : [],
    });
    const hot = table({
      caption: 'Hottest cells',
      empty: 'No hot cells.',
      columns: [
        { key: 'rank', label: 'Rank', num: true },
        { key: 'cell', label: 'Cell (H3)', fmt: (v) => el('code', { text: String(v) }) },
        { key: 'events', label: 'Events', num: true },
        { key: 'harm', label: 'Harm', num: true },
      ],
      rows: Array.isArray(view.hot_cells) ? view.hot_cells : [],
    });
    const freeList = Array.isArray(free.mahallas) ? free.mahallas : [];
    const freeBox = el('section', {},
      el('h3', {}, `Crime-free mahallas: ${fmtNum(free.count ?? freeList.length)}`),
      freeList.length
        ? el('ul', { class: 'free-list' }, freeList.map((m) => el('li', {},
          el('button', { type: 'button', class: 'linklike', onclick: () => drill(`mahalla:${m.mahalla_id}`) }, m.name || m.mahalla_id),
          m.district_id ? el('span', { class: 'muted' }, ` · ${districtName(m.district_id)}`) : '')))
        : el('p', { class: 'muted', text: 'None on this day.' }));
    const mahallas = el('section', { id: 'report-mahallas' });
    $('report-body').replaceChildren(heading, cards, focusSection(view), streakSection(view), difficultSection(view), recurrenceSection(view), partsTable, mahallas, cats, hot, freeBox);
    if ((s.scope === 'nation' || s.scope === 'region') && can('read_sql')) loadReportMahallas(view.date || $('report-date').value, s, mahallas, token);
  }

  const FOCUS_GROUPS = [
    ['victim_minor', 'Minor victims (under 18)'],
    ['victim_youth', 'Young victims (18 to 30)'],
    ['victim_woman', 'Women victims'],
    ['offender_minor', 'Minor offenders (under 18)'],
    ['offender_youth', 'Young offenders (18 to 30)'],
    ['domestic', 'Family and domestic'],
    ['offender_youth_drugs', 'Drug offences, young offenders'],
  ];

  // A focus-group count as the report gives it: the number, "<3" (a small
  // count withheld from this account), or "withheld".
  function focusCount(f) {
    if (!f) return '—';
    if (f.offences !== null && f.offences !== undefined) return fmtNum(f.offences);
    if (f.fewer_than) return el('span', { title: 'a small count, withheld so that it identifies nobody' }, `<${f.fewer_than}`);
    return el('span', { class: 'muted', title: 'withheld: with the total it would give away a small count beside it' }, 'withheld');
  }

  /** The focus groups of prevention: the scope's own, and per part. */
  function focusSection(view) {
    const rows = Array.isArray(view.focus_groups) ? view.focus_groups : [];
    const s = view.summary || {};
    const of = (r, g) => rows.find((f) => f.scope === r.scope && f.scope_id === r.scope_id && f.focus_group === g);
    const own = FOCUS_GROUPS.map(([g, label]) => ({ label, f: of(s, g) })).filter((x) => x.f);
    const box = el('section', { id: 'report-focus' });
    if (!own.length) {
      box.append(el('h3', { text: 'Focus groups' }), el('p', { class: 'muted', text: 'This report was made before focus groups were counted.' }));
      return box;
    }
    box.append(table({
      caption: 'Focus groups',
      sortable: false,
      columns: [
        { key: 'label', label: 'Group' },
        { key: 'count', label: 'Offences', get: (r) => r.f, fmt: (f) => focusCount(f) },
        { key: 'z7', label: 'z vs 7 days', get: (r) => r.f, fmt: (f) => zCard(f.z7, f.baseline7, f.baseline7_days, 7) },
        { key: 'z28', label: 'z vs 28 days', get: (r) => r.f, fmt: (f) => zCard(f.z28, f.baseline28, f.baseline28_days, 28) },
      ],
      rows: own,
    }));
    const parts = (Array.isArray(view.parts) ? view.parts : []).filter((p) => p.scope !== 'unassigned');
    if (parts.length) {
      box.append(table({
        caption: 'Focus groups by area',
        columns: [
          { key: 'name', label: 'Area', fmt: (v, r) => el('button', { type: 'button', class: 'linklike', onclick: () => drill(scopeOf(r)) }, v || r.scope_id) },
          ...FOCUS_GROUPS.map(([g, label]) => ({ key: g, label, num: true, get: (r) => of(r, g)?.offences ?? (of(r, g) ? -1 : null), fmt: (v, r) => focusCount(of(r, g)) })),
        ],
        rows: parts,
      }));
    }
    return box;
  }

  /** Crime-free streaks: a mahalla's own, or the scope's mahallas per threshold. */
  function streakSection(view) {
    const s = view.summary || {};
    const box = el('section', { id: 'report-streaks' }, el('h3', { text: 'Crime-free streaks' }));
    if (s.scope === 'mahalla') {
      const days = s.crime_free_days;
      let text = 'Not recorded in this report.';
      if (days !== null && days !== undefined) {
        if (!s.last_offence) text = `At least ${fmtNum(days)} days: no offence since the records began${s.records_since ? ` on ${s.records_since}` : ''}.`;
        else if (days === 0) text = s.crime_free_days_before ? `An offence on this day, after ${fmtNum(s.crime_free_days_before)} days without one.` : 'An offence on this day.';
        else text = `${fmtNum(days)} days since the last offence (${s.last_offence}).`;
      }
      box.append(el('p', { text }));
      return box;
    }
    const st = view.streaks;
    if (!st || !Array.isArray(st.thresholds)) {
      box.append(el('p', { class: 'muted', text: 'This report was made before streaks were recorded.' }));
      return box;
    }
    const names = (list) => (list.length
      ? el('span', {}, ...list.flatMap((m, i) => [i ? ', ' : '', el('button', { type: 'button', class: 'linklike', onclick: () => drill(`mahalla:${m.mahalla_id}`) }, m.name || m.mahalla_id)]))
      : el('span', { class: 'muted', text: 'none' }));
    if (st.records_since) box.append(el('p', { class: 'muted', text: `Days since each mahalla's last offence, from the records that begin on ${st.records_since}: a streak can be no longer than the records.` }));
    box.append(table({
      sortable: false,
      columns: [
        { key: 'days', label: 'Crime-free for at least', fmt: (v) => `${fmtNum(v)} days` },
        { key: 'count', label: 'Mahallas', num: true },
        { key: 'joined', label: 'Joined on this day', fmt: (v) => names(v) },
        { key: 'left', label: 'Left on this day', fmt: (v) => names(v) },
      ],
      rows: st.thresholds,
    }));
    return box;
  }

  /** Difficult mahallas: the rule's list, newly difficult and recovered. */
  function difficultSection(view) {
    const s = view.summary || {};
    const d = view.difficult || {};
    const list = Array.isArray(d.mahallas) ? d.mahallas : [];
    const recovered = Array.isArray(d.recovered) ? d.recovered : [];
    const box = el('section', { id: 'report-difficult' });
    if (s.difficult_mahallas === null || s.difficult_mahallas === undefined) {
      box.append(el('h3', { text: 'Difficult mahallas' }), el('p', { class: 'muted', text: s.scope === 'unassigned' ? 'Not for events outside every mahalla.' : 'This report was made before difficult mahallas were judged.' }));
      return box;
    }
    const newly = list.filter((r) => r.newly).length;
    box.append(
      el('h3', { text: `Difficult mahallas: ${fmtNum(list.length)}` }),
      el('p', { class: 'muted', text: `Newly difficult on this day: ${fmtNum(newly)}; recovered since the day before: ${fmtNum(recovered.length)}. A mahalla is difficult when, over the last 14 days, escalations stayed open or its offences kept scoring high (the report's rule).` }));
    const rows = list.concat(recovered);
    if (!rows.length) return box;
    box.append(table({
      caption: 'Difficult and recovered mahallas',
      columns: [
        { key: 'name', label: 'Mahalla', fmt: (v, r) => el('button', { type: 'button', class: 'linklike', onclick: () => drill(`mahalla:${r.mahalla_id}`) }, v || r.mahalla_id) },
        { key: 'district_id', label: 'District', fmt: districtName },
        { key: 'status', label: 'Status', get: (r) => (r.status === 'difficult' ? (r.newly ? 'newly difficult' : 'difficult') : 'recovered') },
        { key: 'difficult_since', label: 'Since', fmtMissing: () => '—' },
        { key: 'difficult_days', label: 'Difficult days of 14', num: true, fmt: (v, r) => el('span', { title: `${r.escalation_days} with an escalation open, ${r.score_days} with a high change score; ${r.days_scored} of 14 days had a score` }, fmtNum(v)) },
        { key: 'offences_7d', label: 'Offences, 7 days', num: true },
        { key: 'offences_prev_7d', label: '7 days before', num: true },
        { key: 'trend', label: 'Trend' },
        { key: 'open_escalations', label: 'Open escalations', num: true, fmt: (v, r) => (r.open_level ? `${fmtNum(v)} (${r.open_level})` : fmtNum(v)) },
        { key: 'inspector', label: 'Inspector', fmtMissing: () => '—' },
      ],
      rows,
    }));
    return box;
  }

  /** Recurrence over the last 14 days: repeat locations and near repeats. */
  function recurrenceSection(view) {
    const s = view.summary || {};
    const box = el('section', { id: 'report-recurrence' }, el('h3', { text: 'Recurrence, last 14 days' }));
    if (s.place_offences === null || s.place_offences === undefined) {
      box.append(el('p', { class: 'muted', text: s.scope === 'unassigned' ? 'Not for events outside every mahalla.' : 'This report was made before recurrence was measured.' }));
      return box;
    }
    const ratio = s.near_repeat_ratio;
    box.append(el('p', {},
      `${fmtNum(s.place_offences)} place-based offences; ${fmtNum(s.repeat_cells)} repeat locations (a cell of about 66 m with two or more offences of one category) with ${fmtNum(s.repeat_offences)} offences.`,
      ratio === null || ratio === undefined ? '' : ` Near repeats (an earlier offence of the same category within about 200 m and 7 days): ${fmtNum(s.near_repeat_offences)} (${fmtShare(s.near_repeat_share)}); ${fmtNum(s.near_repeat_pairs)} close pairs against ${fmtNum(Number(s.near_repeat_expected), 1)} with the times shuffled (ratio ${fmtNum(Number(ratio), 2)}, ${fmtNum(Number(s.near_repeat_excess), 2)} beyond chance per offence).`));
    const parts = (Array.isArray(view.parts) ? view.parts : []).filter((p) => p.near_repeat_ratio !== null && p.near_repeat_ratio !== undefined);
    if (parts.length) {
      box.append(table({
        caption: 'Near repeats by area',
        columns: [
          { key: 'name', label: 'Area', fmt: (v, r) => el('button', { type: 'button', class: 'linklike', onclick: () => drill(scopeOf(r)) }, v || r.scope_id) },
          { key: 'place_offences', label: 'Place-based offences', num: true },
          { key: 'repeat_cells', label: 'Repeat locations', num: true },
          { key: 'near_repeat_share', label: 'Near-repeat share', num: true, fmt: fmtShare },
          { key: 'near_repeat_ratio', label: 'Ratio to shuffled times', num: true, fmt: (v) => fmtNum(Number(v), 2) },
          { key: 'near_repeat_excess', label: 'Beyond chance per offence', num: true, fmt: (v) => fmtNum(Number(v), 2) },
        ],
        rows: parts,
      }));
    }
    box.append(table({
      caption: 'Top repeat locations',
      empty: 'No repeat locations.',
      columns: [
        { key: 'rank', label: 'Rank', num: true },
        { key: 'cell', label: 'Cell (H3)', fmt: (v) => el('code', { text: String(v) }) },
        { key: 'category', label: 'Category', fmt: words },
        { key: 'mahalla_id', label: 'Mahalla', fmt: (v) => el('button', { type: 'button', class: 'linklike', onclick: () => drill(`mahalla:${v}`) }, mahallaName(v)) },
        { key: 'offences', label: 'Offences', num: true },
        { key: 'first_offence', label: 'First', fmt: fmtTime },
        { key: 'last_offence', label: 'Latest', fmt: fmtTime },
      ],
      rows: Array.isArray(view.repeat_cells) ? view.repeat_cells : [],
    }));
    return box;
  }

  const sqlString = (s) => `'${String(s).replaceAll("'", "''")}'`;

  /** Every mahalla of a nation or region report, from the daily_reports table. */
  async function loadReportMahallas(date, s, box, token) {
    const where = [`date = DATE ${sqlString(date)}`, "scope = 'mahalla'"];
    if (s.scope === 'region') where.push(`region_id = ${sqlString(s.scope_id)}`);
    const query = 'SELECT scope_id AS mahalla_id, name, district_id, events, incidents, camera_alerts, fraud_flags, offences, '
      + 'cyber_share, harm, z7, z28, camera_alerts_z7, escalations_opened, escalations_closed, crime_free_days, last_offence\nFROM daily_reports\n'
      + `WHERE ${where.join(' AND ')}\nORDER BY harm DESC, offences DESC, name`;
    box.replaceChildren(el('h3', { text: 'Mahallas, most harm first' }), el('p', { class: 'muted', text: 'Loading…' }));
    let out;
    try {
      out = (await api('/v1/sql', { method: 'POST', body: JSON.stringify({ query }) })).body;
    } catch (e) {
      if (token === report.token) box.replaceChildren(el('h3', { text: 'Mahallas' }), el('p', { class: 'error-box', text: `The mahalla table could not be read: ${describe(e)}` }));
      return;
    }
    if (token !== report.token) return;
    const cols = (out.columns || []).map((c) => c.name);
    const rows = (out.rows || []).map((r) => Object.fromEntries(cols.map((c, i) => [c, r[i]])));
    box.replaceChildren(
      table({
        caption: `Mahallas, most harm first (${rows.length}${out.truncated ? ', cut at the row limit' : ''})`,
        empty: 'No mahalla rows in this report.',
        columns: [
          {
            key: 'name', label: 'Mahalla',
            fmt: (v, r) => el('button', { type: 'button', class: 'linklike', onclick: () => drill(`mahalla:${r.mahalla_id}`) }, v || r.mahalla_id),
          },
          { key: 'district_id', label: 'District', fmt: districtName },
          ...ROW_COLUMNS,
        ],
        rows,
      }),
      el('p', {}, el('button', {
        type: 'button', class: 'quiet',
        onclick: () => {
          $('sql-query').value = query;
          location.hash = '#sql';
        },
      }, 'Open this query in the SQL console')));
  }

  // ---------------------------------------------------------------- SQL console

  const SQL_EXAMPLES = [
    ['Events of the last 24 hours by kind',
      "SELECT kind, count(*) AS events\nFROM events\nWHERE occurred_at > now() - INTERVAL '24 hours'\nGROUP BY kind\nORDER BY events DESC"],
    ['Mahallas with most incidents this week',
      "SELECT m.name, e.mahalla_id, count(*) AS incidents\nFROM incidents e JOIN mahallas m ON m.mahalla_id = e.mahalla_id\nWHERE e.occurred_at > now() - INTERVAL '7 days'\nGROUP BY m.name, e.mahalla_id\nORDER BY incidents DESC\nLIMIT 20"],
    ['Open escalations',
      "SELECT id, mahalla_id, level, rule, status, tier, opened_at\nFROM escalations\nWHERE status IN ('open', 'acknowledged', 'assigned')\nORDER BY opened_at DESC"],
    ['Drug-handoff camera alerts, last day',
      "SELECT occurred_at, mahalla_id, camera_id, confidence\nFROM camera_alerts\nWHERE detection = 'drug_handoff' AND occurred_at > now() - INTERVAL '1 day'\nORDER BY occurred_at DESC\nLIMIT 100"],
    ['Fraud by scheme, last 7 days',
      "SELECT scheme, count(*) AS flags, sum(amount_uzs) AS amount_uzs\nFROM fraud_flags\nWHERE occurred_at > now() - INTERVAL '7 days'\nGROUP BY scheme\nORDER BY flags DESC"],
    ['Tables and columns', 'SELECT table_name, column_name, data_type\nFROM information_schema.columns\nORDER BY table_name, ordinal_position'],
  ];

  page.sqlExamples = SQL_EXAMPLES.map(([label, query]) => ({ label, query }));

  function startSql() {
    if (!$('sql-query').value) $('sql-query').value = SQL_EXAMPLES[0][1];
  }

  function initSql() {
    const examples = $('sql-examples');
    SQL_EXAMPLES.forEach(([label], i) => examples.append(el('option', { value: String(i), text: label })));
    examples.addEventListener('change', () => {
      const ex = SQL_EXAMPLES[Number(examples.value)];
      if (ex) $('sql-query').value = ex[1];
      examples.value = '';
      $('sql-query').focus();
    });
    $('sql-query').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        $('sql-form').requestSubmit();
      }
    });
    $('sql-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const query = $('sql-query').value.trim();
      const error = $('sql-error');
      const result = $('sql-result');
      const status = $('sql-status');
      if (!query) {
        error.textContent = 'Write a query first.';
        error.hidden = false;
        return;
      }
      $('sql-run').disabled = true;
      status.textContent = 'Running…';
      error.hidden = true;
      const started = performance.now();
      try {
        const { body } = await api('/v1/sql', { method: 'POST', body: JSON.stringify({ query }) });
        const columns = Array.isArray(body.columns) ? body.columns : [];
        const rows = Array.isArray(body.rows) ? body.rows : [];
        const took = body.elapsed_ms !== undefined ? Number(body.elapsed_ms) : performance.now() - started;
        status.textContent = `${rows.length} row${rows.length === 1 ? '' : 's'}${body.truncated ? ' (cut at the row limit)' : ''} in ${took.toFixed(1)} ms.`;
        result.replaceChildren(table({
          columns: columns.map((c, i) => ({ key: i, label: c.name, type: c.type, num: /INT|FLOAT|DOUBLE|DECIMAL|REAL/i.test(String(c.type)) })),
          rows,
          empty: 'The query returned no rows.',
        }));
        result.firstChild.classList.remove('table-wrap');
        result.dataset.rows = String(rows.length);
      } catch (err) {
        status.textContent = '';
        error.textContent = describe(err);
        error.hidden = false;
        result.replaceChildren();
        delete result.dataset.rows;
      } finally {
        $('sql-run').disabled = false;
      }
    });
  }

  // ---------------------------------------------------------------- silences

  const SILENCE_REFRESH_MS = 60000;

  function silenceScope(s) {
    const parts = [];
    for (const key of ['region', 'district', 'mahalla', 'rule', 'level']) {
      if (Array.isArray(s[key]) && s[key].length) parts.push(`${key} ${s[key].join(', ')}`);
    }
    return parts.length ? parts.join(' · ') : 'everything';
  }

  async function loadSilences() {
    try {
      const { body } = await api('/v1/silences');
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
                announce(`Silence ${s.id} ended`);
              } catch (e) {
                showError('silences', `The silence could not be ended: ${describe(e)}`);
              }
              loadSilences();
            },
          }, 'End now')
          : null;
        return el('li', { dataset: { silence: s.id } },
          el('strong', { text: silenceScope(s) }),
          ` ${started ? '' : `from ${fmtTime(s.starts_at)} `}until ${fmtTime(s.ends_at)}, by ${s.created_by}: “${s.reason}” `,
          ...(end ? [end] : []));
      }));
      clearError('silences');
    } catch (e) {
      showError('silences', `Silences could not be loaded: ${describe(e)}`);
    }
  }

  function initSilences() {
    if (!can('read_escalations')) return;
    $('silences').hidden = false;
    if (can('manage_silences')) {
      const form = $('silence-form');
      form.hidden = false;
      $('s-district').append(...[...$('f-district').options]
        .filter((o) => o.value)
        .map((o) => el('option', { value: o.value, text: o.textContent })));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const box = $('silence-error');
        box.hidden = true;
        // The form is in Tashkent time (UTC+5, no daylight saving), as the page shows.
        const start = $('s-start').value ? new Date(`${$('s-start').value}:00+05:00`) : new Date();
        const hours = Number($('s-for').value);
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
          announce('Silence created');
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

  // ---------------------------------------------------------------- start

  /** Starts the page once someone is logged in (once per load: see endSession). */
  async function start() {
    initMap();
    initFeed();
    initActions();
    initSql();
    window.addEventListener('hashchange', showView);
    showView();
    if (!views.some(viewAllowed)) {
      setConn('off', 'no feed');
      document.body.dataset.ready = 'true';
      return;
    }
    if (can('read_map')) {
      try {
        await loadRegistry();
        clearError('registry');
        renderWho(); // the scope by its names now
      } catch (e) {
        showError('registry', `Regions and districts could not be loaded: ${describe(e)}`);
      }
    }
    initSilences();
    let feedStarted = null;
    if (can('read_escalations')) feedStarted = loadFeed();
    else setConn('off', 'no feed');
    if (can('read_map')) {
      try {
        await loadMap();
        clearError('map');
      } catch (e) {
        $('map-status').textContent = '';
        showError('map', `The map could not be loaded: ${describe(e)}`);
      }
      setInterval(refreshRisk, RISK_REFRESH_MS);
    }
    await feedStarted;
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
