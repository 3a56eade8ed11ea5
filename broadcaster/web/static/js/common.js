// Small helpers shared by every page. No innerHTML anywhere: user text is always textContent.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** fetch() a JSON endpoint; throws ApiError with the server's {"error"} reason. */
export async function api(method, path, { body, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'same-origin',
    });
  } catch (err) {
    throw new ApiError(0, 'the server is unreachable');
  }
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) throw new ApiError(resp.status, data?.error || `HTTP ${resp.status}`);
  return data;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** A token given as a string, or as a function for the latest one (a page that rejoins). */
export const tokenOf = (token) => (typeof token === 'function' ? token() : token);

/** Build an element: h('li', {class: 'x', dataset: {id: 1}}, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function roomFromPath() {
  const m = location.pathname.match(/^\/w\/([^/]+)/);
  return m ? decodeURIComponent(m[1]) : null;
}

export function timeOf(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).slice(0, 2);
  return parts.map((p) => p[0]?.toUpperCase() || '').join('') || '?';
}

/** An identity LiveKit and our API accept, derived from a display name. */
export function identityFor(name, prefix = 'guest') {
  const base = String(name).normalize('NFKD').replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '').toLowerCase().slice(0, 40) || prefix;
  const rand = Array.from(crypto.getRandomValues(new Uint8Array(3)))
    .map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${/^[a-z0-9]/.test(base) ? base : prefix}-${rand}`;
}

/** Remember who this tab joined as, so a reload rejoins with the same claim. */
export const session = {
  key: (room, role) => `broadcaster:${role}:${room}`,
  load(room, role) {
    try { return JSON.parse(sessionStorage.getItem(this.key(room, role)) || 'null'); }
    catch { return null; }
  },
  save(room, role, value) { sessionStorage.setItem(this.key(room, role), JSON.stringify(value)); },
  clear(room, role) { sessionStorage.removeItem(this.key(room, role)); },
};

export function renderQuestion(q) {
  return h('li', { class: 'q', dataset: { id: q.id } },
    h('div', { class: 'avatar' }, initials(q.name)),
    h('div', { class: 'q-body' },
      h('div', { class: 'q-meta' }, h('strong', {}, q.name), h('span', { class: 'muted' }, timeOf(q.created_at))),
      h('p', { class: 'q-text' }, q.text)));
}

/** Poll fn every ms while the page is open; errors are swallowed (next tick retries). */
export function every(ms, fn) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (err) { console.warn(err); }
    if (!stopped) setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; };
}

/**
 * Open a viewer or presenter page: load the webinar, show it and its audience count. Returns false when the page cannot join (unknown room or ended webinar).
 */
export async function openWebinar(room, { showMeta, setPageState }) {
  try {
    const info = await api('GET', `/api/webinars/${room}`);
    showMeta(info);
    if (info.state === 'ended') { setPageState('ended'); return false; }
  } catch (err) {
    $('#title').textContent = 'Webinar not found';
    $('#join-error').textContent = err.message;
    $('#join-button').disabled = true;
    return false;
  }
  // once, for the page before it joins; then LiveKit's pushed count (audience-count.js)
  try {
    const counts = await api('GET', `/api/webinars/${room}/audience`);
    const el = $('#audience-count');
    if (!el.dataset.source) {
      el.textContent = String(counts.viewers);
      el.dataset.participants = String(counts.participants);
    }
  } catch { /* the pushed count takes over once connected */ }
  return true;
}
