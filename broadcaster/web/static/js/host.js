// Host console: sign in with the host key, create and pick webinars, hand the floor,
// read questions, run the avatar bot, end the session.
import { $, api, ApiError, every, h, timeOf } from '/static/js/common.js';
import { Stage } from '/static/js/stage.js';
import { StageStatus } from '/static/js/stage_status.js';
import { hostAudience } from '/static/js/host-audience.js';
import { peopleControls, peopleQuery, resetPeople, showPeopleMeta } from '/static/js/host-people.js';
import { refreshRecordings } from '/static/js/host_recordings.js';

const KEY_STORE = 'broadcaster:host-key';
const ROOM_STORE = 'broadcaster:host-room';
let key = null;
let current = null;       // the selected webinar
let webinars = [];
let stage = null;
let endArmed = null;

const hostApi = (method, path, body) => api(method, path, { token: key, body });

function toast(message, kind = 'info') {
  const el = $('#toast');
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

function fail(err) {
  if (err instanceof ApiError && err.status === 401) { signOut('Your host key was refused.'); return; }
  toast(err.message || String(err), 'error');
}

// --- sign-in -------------------------------------------------------------------------
function keyFromFragment() {
  const m = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search); // keep it out of history
  return decodeURIComponent(m[1]);
}

async function signIn(candidate) {
  await api('GET', '/api/host/session', { token: candidate });
  key = candidate;
  sessionStorage.setItem(KEY_STORE, key);
  document.body.dataset.auth = 'yes';
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#sign-out').hidden = false;
  await loadWebinars();
  const remembered = sessionStorage.getItem(ROOM_STORE);
  const pick = webinars.find((w) => w.room === remembered) || webinars.find((w) => w.state === 'live');
  if (pick) select(pick.room);
}

function signOut(message = '') {
  key = null;
  sessionStorage.removeItem(KEY_STORE);
  document.body.dataset.auth = 'no';
  $('#login').hidden = false;
  $('#console').hidden = true;
  $('#sign-out').hidden = true;
  $('#login-error').textContent = message;
  stopWatching();
}

// --- webinars ------------------------------------------------------------------------
async function loadWebinars() {
  const data = await hostApi('GET', '/api/host/webinars');
  webinars = data.webinars.sort((a, b) => (a.state === 'live' ? 0 : 1) - (b.state === 'live' ? 0 : 1));
  const list = $('#webinars');
  list.replaceChildren(...webinars.map((w) => h('li', {
    class: `w-item${current?.room === w.room ? ' active' : ''}`,
    dataset: { room: w.room, state: w.state },
    onclick: () => select(w.room),
  }, h('div', { class: 'w-title' }, w.title),
  h('div', { class: 'w-meta' }, h('span', { class: `badge tiny ${w.state === 'live' ? 'live' : ''}` }, w.state),
    h('code', {}, w.room)))));
  $('#webinars-empty').hidden = webinars.length > 0;
}

function showWebinar(w) {
  current = w;
  $('#detail').hidden = false;
  $('#no-detail').hidden = true;
  $('#d-title').textContent = w.title;
  $('#d-room').textContent = w.room;
  $('#d-state').textContent = w.state === 'live' ? 'Live' : 'Ended';
  $('#d-state').classList.toggle('live', w.state === 'live');
  $('#detail').dataset.state = w.state;
  $('#d-speaker').textContent = w.speaker || 'none';
  $('#d-viewer-url').value = w.viewer_url;
  $('#d-presenter-url').value = w.presenter_url;
  for (const id of ['#end', '#watch', '#bot-start', '#new-code']) $(id).disabled = w.state !== 'live';
}

async function select(room) {
  if (current?.room !== room) {
    stopWatching();
    resetPeople();
    $('#host-questions').replaceChildren();
    $('#hands').replaceChildren();
  }
  sessionStorage.setItem(ROOM_STORE, room);
  showWebinar(await hostApi('GET', `/api/host/webinars/${room}`));
  for (const li of document.querySelectorAll('#webinars .w-item')) {
    li.classList.toggle('active', li.dataset.room === room);
  }
  await Promise.allSettled([refreshParticipants(), audience.refreshQuestions(),
    audience.refreshHands(), refreshBot(), refreshBans(), refreshRecordings(room, hostApi, key, fail)]);
}

// --- participants --------------------------------------------------------------------
function mediaCell(p) {
  if (!p.tracks.length) return h('span', { class: 'muted' }, '—');
  return p.tracks.map((t) => {
    const icon = t.kind === 'video' ? 'i-video' : 'i-mic';
    return h('span', { class: `tag ${t.muted ? 'muted' : ''}`, dataset: { source: t.source } },
      h('span', { class: `icon ${icon}` }), t.kind === 'video' ? ' video' : ' mic');
  });
}

function action(label, cls, fn) {
  return h('button', {
    class: `btn small ${cls}`, type: 'button',
    onclick: async (ev) => {
      ev.currentTarget.disabled = true;
      try { await fn(); } catch (err) { fail(err); }
      await refreshParticipants();
    },
  }, label);
}

function row(p) {
  const stack = p.stack || p.role === 'bot' || p.role === 'host' || p.role === 'unknown';
  const base = `/api/host/webinars/${current.room}/participants/${encodeURIComponent(p.identity)}`;
  const buttons = stack ? [] : [
    p.speaker || p.can_publish
      ? action('Demote', 'ghost', async () => { await hostApi('POST', `${base}/demote`); toast(`${p.name} left the floor`); })
      : action('Promote', 'primary', async () => { await hostApi('POST', `${base}/promote`); toast(`${p.name} has the floor`); }),
    action('Remove', 'ghost danger-text', async () => {
      await hostApi('POST', `${base}/remove`);
      toast(`${p.name} was removed and cannot come back as ${p.identity}`);
      await refreshBans();
    }),
  ];
  return h('tr', { dataset: { identity: p.identity, role: p.role, speaker: String(p.speaker) } },
    h('td', {}, h('div', { class: 'who' }, h('strong', {}, p.name),
      h('span', { class: 'muted small' }, p.identity))),
    h('td', {}, h('span', { class: `badge tiny role-${p.role}` }, p.role),
      p.speaker ? h('span', { class: 'badge tiny ok' }, 'speaker') : null),
    h('td', {}, mediaCell(p)),
    h('td', { class: 'actions' }, buttons));
}

async function refreshParticipants() {
  if (!current || current.state !== 'live') {
    $('#participants').replaceChildren();
    $('#participants-empty').hidden = false;
    return;
  }
  const data = await hostApi('GET', `/api/host/webinars/${current.room}/participants${peopleQuery()}`);
  $('#participants').replaceChildren(...data.participants.map(row));
  $('#participants-empty').hidden = data.participants.length > 0;
  $('#participant-total').textContent = String(data.total);
  // (with shards, showShards gives the total over every shard instead)
  if ($('#d-shards').hidden) $('#d-viewers').textContent = String(data.counts.viewer || 0);
  showPeopleMeta(data);
  current.speaker = data.speaker;
  $('#d-speaker').textContent = data.speaker
    ? (data.participants.find((p) => p.identity === data.speaker)?.name || data.speaker) : 'none';
  await showShards(current.room); // last: the list and its range above update together
}

/** With audience shards, the total over every shard and each shard's viewers. */
async function showShards(room) {
  const el = $('#d-shards');
  const counts = await api('GET', `/api/webinars/${room}/audience`).catch(() => null);
  el.hidden = !counts?.shards;
  if (!counts?.shards || current?.room !== room) return;
  $('#d-viewers').textContent = String(counts.viewers);
  el.textContent = ` (${Object.entries(counts.shards)
    .map(([shard, n]) => `${shard.split('--').pop()}: ${n}`).join(', ')})`;
}

// --- removed people ------------------------------------------------------------------
async function refreshBans() {
  if (!current) return;
  const room = current.room;
  const data = await hostApi('GET', `/api/host/webinars/${room}/bans`);
  if (current?.room !== room) return;
  $('#bans').replaceChildren(...data.bans.map((b) => h('li', { class: 'ban', dataset: { identity: b.identity } },
    h('div', { class: 'who' }, h('strong', {}, b.name), h('span', { class: 'muted small' }, `${b.identity} · ${timeOf(b.banned_at)}`)),
    h('button', {
      class: 'btn small ghost', type: 'button',
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try {
          await hostApi('DELETE', `/api/host/webinars/${room}/bans/${encodeURIComponent(b.identity)}`);
          toast(`${b.name} may join again`);
        } catch (err) { fail(err); }
        await refreshBans();
      },
    }, 'Let back in'))));
  $('#ban-total').textContent = String(data.bans.length);
  $('#bans-empty').hidden = data.bans.length > 0;
}

// --- hands and questions (host-audience.js) -----------------------------------------
const audience = hostAudience({
  key: () => key, room: () => current?.room, toast, fail,
  after: () => refreshParticipants(),
});

// --- bot -----------------------------------------------------------------------------
function showBot(s) {
  const badge = $('#bot-state');
  const elsewhere = s.state !== 'running' && s.in_room;
  badge.textContent = elsewhere ? 'in the room' : s.state;
  badge.dataset.state = s.state;
  badge.classList.toggle('ok', s.state === 'running' || elsewhere);
  $('#bot-detail').textContent = s.state === 'running' ? `Running (pid ${s.pid}).`
    : elsewhere ? 'A bot started outside this console is in the room.'
      : s.state === 'exited' ? `Exited with code ${s.returncode}.` : 'Not running.';
  $('#bot-stop').disabled = s.state === 'stopped';
  $('#bot-start').disabled = s.state === 'running' || elsewhere || current?.state !== 'live';
}

async function refreshBot() {
  if (current) showBot(await hostApi('GET', `/api/host/webinars/${current.room}/bot`));
}

// --- watching the stage --------------------------------------------------------------
async function startWatching() {
  const t = await hostApi('POST', `/api/host/webinars/${current.room}/token`);
  $('#preview-card').hidden = false;
  stage = new Stage({
    root: $('#stage'), botIdentity: t.bot_identity,
    stackIdentities: t.stack_identities, captionIdentities: t.caption_identities,
  });
  $('#watch').textContent = 'Stop watching';
  watchStageStatus();
  await stage.connect(t.url, t.token);
}

// issue 15: the preview shows the same slates as the viewers (no rejoin: click again)
let stageStatus = null;
function watchStageStatus() {
  stageStatus?.stop();
  stageStatus = new StageStatus({ stage });
}

function stopWatching() {
  stageStatus?.stop();
  stageStatus = null;
  stage?.disconnect();
  stage = null;
  $('#preview-card').hidden = true;
  $('#watch').textContent = 'Watch stage';
}

// --- the web app restarting: the polls fail a few seconds, then carry on ----------
/** A poll of the selected webinar that says "Reconnecting to the server…" while the
 * web app is unreachable (or its proxy answers 502-504) and hides it once one works. */
function polled(fn) {
  return async () => {
    if (!key || !current) return;
    try {
      await fn();
      $('#server-state').hidden = true;
    } catch (err) {
      const gone = err instanceof ApiError && (err.status === 0 || (err.status >= 502 && err.status <= 504));
      if (gone) $('#server-state').hidden = false;
      throw err;
    }
  };
}

// --- wiring --------------------------------------------------------------------------
function main() {
  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#login-error').textContent = '';
    try { await signIn($('#host-key').value.trim()); } catch (err) {
      $('#login-error').textContent = err.status === 401 ? 'That host key is not right.' : err.message;
    }
  });
  $('#sign-out').addEventListener('click', () => signOut());

  $('#create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('#create-error').textContent = '';
    const title = $('#create-title').value.trim();
    const room = $('#create-room').value.trim();
    try {
      const w = await hostApi('POST', '/api/host/webinars', room ? { title, room } : { title });
      $('#create-title').value = '';
      $('#create-room').value = '';
      await loadWebinars();
      await select(w.room);
      toast(`Webinar “${w.title}” is live`);
    } catch (err) {
      if (err.status === 401) fail(err); else $('#create-error').textContent = err.message;
    }
  });

  for (const btn of document.querySelectorAll('.copy')) {
    btn.addEventListener('click', async () => {
      const input = $(`#${btn.dataset.copy}`);
      try { await navigator.clipboard.writeText(input.value); toast('Link copied'); } catch {
        input.select(); toast('Press Ctrl+C to copy');
      }
    });
  }

  $('#watch').addEventListener('click', () => {
    if (stage) stopWatching(); else startWatching().catch(fail);
  });
  $('#end').addEventListener('click', async () => {
    const btn = $('#end');
    if (!endArmed) { // two clicks instead of a blocking confirm() dialog
      btn.textContent = 'Click again to end';
      endArmed = setTimeout(() => { endArmed = null; btn.textContent = 'End webinar'; }, 4000);
      return;
    }
    clearTimeout(endArmed);
    endArmed = null;
    btn.textContent = 'End webinar';
    try {
      stopWatching();
      showWebinar(await hostApi('POST', `/api/host/webinars/${current.room}/end`));
      await loadWebinars();
      await Promise.allSettled([refreshParticipants(), refreshBot()]);
      toast('Webinar ended');
    } catch (err) { fail(err); }
  });
  $('#new-code').addEventListener('click', async () => {
    try {
      showWebinar(await hostApi('POST', `/api/host/webinars/${current.room}/presenter-code`));
      toast('New presenter link: the old one no longer works');
    } catch (err) { fail(err); }
  });
  $('#bot-start').addEventListener('click', async () => {
    try { showBot(await hostApi('POST', `/api/host/webinars/${current.room}/bot/start`)); } catch (err) { fail(err); }
  });
  $('#bot-stop').addEventListener('click', async () => {
    try { showBot(await hostApi('POST', `/api/host/webinars/${current.room}/bot/stop`)); } catch (err) { fail(err); }
  });

  peopleControls(() => refreshParticipants().catch(fail));
  every(2000, polled(refreshParticipants));
  every(2000, polled(() => audience.refreshQuestions()));
  every(2000, polled(() => audience.refreshHands()));
  every(5000, polled(refreshBans));
  every(4000, polled(refreshBot));

  const candidate = keyFromFragment() || sessionStorage.getItem(KEY_STORE);
  if (candidate) {
    signIn(candidate).catch((err) => signOut(err.status === 401 ? 'That host key is not right.' : err.message));
  } else {
    signOut();
  }
}

main();
