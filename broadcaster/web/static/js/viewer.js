// Viewer page: join by link with a name, watch the stage, see the audience, ask questions.
import { $, api, ApiError, identityFor, openWebinar, roomFromPath, session } from '/static/js/common.js';
import { Stage } from '/static/js/stage.js';
import { StageStatus } from '/static/js/stage_status.js';
import { startHands } from '/static/js/hands.js';
import { qaElements, startBoard } from '/static/js/qa.js';
import { viewerControls } from '/static/js/viewer-controls.js';
import { followAudience } from '/static/js/audience-count.js';

const room = roomFromPath();
const ROLE = 'viewer';
let joined = null; // the join answer: token, identity, claim...
let stage = null;
let hands = null; // the raise-hand card (hands.js)
let board = null; // the Q&A board (qa.js)
let status = null; // the stage's StageStatus (stage_status.js)

function setPageState(state) {
  document.body.dataset.state = state;
  $('#conn-state').dataset.state = state;
  $('#conn-state').textContent = {
    idle: 'not connected', connecting: 'connecting…', live: 'connected',
    reconnecting: 'reconnecting…', ended: 'webinar ended', disconnected: 'disconnected',
  }[state] || state;
  $('#ended').hidden = state !== 'ended';
  $('#live-badge').textContent = state === 'ended' ? 'Ended' : 'Live';
  $('#live-badge').classList.toggle('live', state !== 'ended');
  if (state === 'ended') {
    $('#join-form').hidden = true;
    $('#question-text').disabled = true;
    $('#question-send').disabled = true;
  }
  if (state === 'disconnected') $('#stage-message').textContent = 'Disconnected. Joining again…';
  rejoinSoon(state);
}

// Issue 14: when the LiveKit node of this viewer's room is lost, the page joins again
// through the join API, naming the room it lost (the API sends it to another audience
// shard), instead of asking for a reload: at once when disconnected or when the live
// avatar's picture froze (StageStatus: the dead node's events stop too), after 3 s of
// 'reconnecting'. A connect that hangs gives up after 4 s (stage.js) and asks again.
let rejoinTimer = null;
function rejoinSoon(state, delay) {
  clearTimeout(rejoinTimer);
  if (!joined || !['disconnected', 'reconnecting', 'frozen'].includes(state)) return;
  rejoinTimer = setTimeout(async () => {
    const old = stage;
    stage = null; // its late events are not this page's state any more
    status?.leaving(); // "Reconnecting…" (not the old room's slate) until the avatar is back
    try { await old?.disconnect(); } catch { /* already gone */ }
    try {
      await join(session.load(room, ROLE)?.name || joined.name, joined.livekit_room);
    } catch (err) {
      $('#stage-message').textContent = `${err.message || err} (trying again)`;
      rejoinSoon('disconnected', 1000);
    }
  }, delay ?? (state === 'reconnecting' ? 3000 : state === 'frozen' ? 0 : 500));
}

function showMeta(meta) {
  if (meta.title) {
    $('#title').textContent = meta.title;
    document.title = `${meta.title} · broadcaster`;
  }
  const chip = $('#speaker-chip');
  chip.hidden = !meta.speaker;
  const who = meta.speaker ? (stage ? stage.speakerName(meta.speaker) : meta.speaker) : '';
  if (meta.speaker) $('#speaker-name').textContent = who;
  $('#speaker-line').textContent = !meta.speaker ? 'Nobody has the floor yet'
    : who === 'You' ? 'You have the floor' : `${who} is talking with the avatar`;
  updateFloor();
}

function updateFloor() {
  const lp = stage?.room.localParticipant;
  const canPublish = Boolean(lp?.permissions?.canPublish);
  $('#floor-card').hidden = !canPublish;
  document.body.dataset.floor = canPublish ? 'yes' : 'no';
  if (!canPublish) $('#floor-mic').textContent = 'Turn on microphone';
  hands?.onFloor(canPublish);
}

async function join(name, lost) {
  const saved = session.load(room, ROLE);
  const reuse = saved && saved.name === name;
  let identity = reuse ? saved.identity : identityFor(name);
  let answer;
  try {
    answer = await api('POST', `/api/webinars/${room}/join`, {
      body: { identity, name, role: ROLE, ...(reuse && saved.claim ? { claim: saved.claim } : {}),
        ...(lost ? { lost } : {}) },
    });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 409) throw err;
    identity = identityFor(name); // someone else holds that identity: take a fresh one
    answer = await api('POST', `/api/webinars/${room}/join`, { body: { identity, name, role: ROLE } });
  }
  joined = answer;
  session.save(room, ROLE, { identity: answer.identity, claim: answer.claim, name });
  localStorage.setItem('broadcaster:name', name);

  const mine = new Stage({
    root: $('#stage'),
    botIdentity: answer.bot_identity,
    stackIdentities: answer.stack_identities, captionIdentities: answer.caption_identities,
    onMetadata: showMeta,
    onState: (state) => { if (stage === mine) setPageState(state); },
    onPermissions: updateFloor,
  });
  stage = mine;
  $('#join-form').hidden = true;
  watchStage(name, mine, Boolean(lost));
  await stage.connect(answer.url, answer.token);
  followAudience(stage.room);
  // once per page, whatever the rejoins: each call used to add a card on the same button
  // (one click, one request per join); they ask with the latest join's token.
  // (before preferSound: a stage with no avatar yet may hold that promise)
  if (!hands) {
    hands = startHands({ room, token: () => joined.token, card: $('#hand-card') });
    $('#qa-card').hidden = false;
    board = startBoard({ room, token: () => joined.token, ...qaElements() });
  }
  await stage.preferSound();
  $('#question-text').disabled = false;
  $('#question-send').disabled = false;
  updateFloor();
}

// --- issue 15: stage slates, reconnect banner, quality dot, rejoin with the claim ---
// a freeze that rejoining did not cure (not a node loss) is retried ever more slowly
let frozenDelay = 0;
function watchStage(name, mine, returning) {
  const mineStatus = new StageStatus({
    stage: mine, rejoin: () => rejoinToken(name), returning,
    onAvatar: (state) => { if (state === 'live') frozenDelay = 0; },
    onFrozen: () => {
      if (stage !== mine) { mineStatus.stop(); return; }
      rejoinSoon('frozen', frozenDelay);
      frozenDelay = Math.min(Math.max(2 * frozenDelay, 2000), 30000);
    },
  });
  status = mineStatus;
}

/** A fresh token for the same identity, through the web app's join with our claim. */
async function rejoinToken(name) {
  const saved = session.load(room, ROLE) || {};
  const answer = await api('POST', `/api/webinars/${room}/join`, {
    body: { identity: saved.identity || joined.identity, name, role: ROLE,
      ...(saved.claim ? { claim: saved.claim } : {}),
      ...(joined?.livekit_room ? { lost: joined.livekit_room } : {}) },
  });
  session.save(room, ROLE, { identity: answer.identity, claim: answer.claim, name });
  joined = answer;
  return answer;
}

async function sendQuestion(text) {
  await api('POST', `/api/webinars/${room}/questions`, { body: { text }, token: joined.token });
  await board?.refresh();
}

async function toggleFloorMic() {
  const lp = stage.room.localParticipant;
  const on = !lp.isMicrophoneEnabled;
  await lp.setMicrophoneEnabled(on);
  $('#floor-mic').textContent = on ? 'Turn off microphone' : 'Turn on microphone';
}

async function main() {
  if (!room) return;
  viewerControls($('#stage'));
  $('#join-name').value = localStorage.getItem('broadcaster:name') || '';
  if (!await openWebinar(room, { showMeta, setPageState })) return;

  $('#join-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = $('#join-name').value.trim();
    if (!name) return;
    $('#join-button').disabled = true;
    $('#join-error').textContent = '';
    try {
      await join(name);
    } catch (err) {
      $('#join-form').hidden = false;
      $('#join-error').textContent = err.message || String(err);
      setPageState('idle');
    } finally {
      $('#join-button').disabled = false;
    }
  });

  const text = $('#question-text');
  text.addEventListener('input', () => { $('#question-count').textContent = `${text.value.length} / 500`; });
  $('#ask-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = text.value.trim();
    if (!value || !joined) return;
    $('#question-send').disabled = true;
    try {
      await sendQuestion(value);
      text.value = '';
      $('#question-count').textContent = '0 / 500';
      $('#question-status').textContent = 'Question sent: everyone can vote for it.';
    } catch (err) {
      $('#question-status').textContent = err.message;
    } finally {
      $('#question-send').disabled = false;
    }
  });
  $('#floor-mic').addEventListener('click', () => toggleFloorMic().catch((e) => {
    $('#question-status').textContent = e.message;
  }));

  // a reload of a tab that had joined rejoins at once, with its claim
  const saved = session.load(room, ROLE);
  if (saved?.name) {
    $('#join-name').value = saved.name;
    $('#join-form').requestSubmit();
  }
}

main();
