// Presenter page: join with the invite code, publish the microphone, see the audience's
// questions, and know whether you hold the floor right now.
import { Track } from '/static/vendor/livekit-client.esm.mjs';
import { $, api, ApiError, every, h, identityFor, openWebinar, roomFromPath, session } from '/static/js/common.js';
import { Stage } from '/static/js/stage.js';
import { StageStatus } from '/static/js/stage_status.js';
import { questionItem, sortTabs } from '/static/js/qa.js';
import { presenterControls } from '/static/js/presenter-controls.js';
import { followAudience } from '/static/js/audience-count.js';
import { setupRehearsal } from '/static/js/rehearsal.js';

const room = roomFromPath();
const code = new URLSearchParams(location.search).get('code') || '';
const ROLE = 'presenter';
let joined = null;
let stage = null;
let wantMic = true;   // the presenter wants to talk whenever they hold the floor
let rehearsing = false; // a rehearsal runs: the stage must not hear this microphone
let meter = null;
let qaSort = () => 'top';

const CONN_TEXT = {
  idle: 'not connected', connecting: 'connecting…', live: 'connected',
  reconnecting: 'reconnecting…', ended: 'webinar ended', disconnected: 'disconnected',
};

function setPageState(state) {
  document.body.dataset.state = state;
  $('#conn-state').dataset.state = state;
  $('#conn-state').textContent = CONN_TEXT[state] || state;
  $('#ended').hidden = state !== 'ended';
  if (state === 'ended') { stopMeter(); $('#mic-toggle').disabled = true; }
  if (state === 'disconnected') $('#stage-message').textContent = 'Disconnected. Reload to rejoin.';
}

function holdsFloor() {
  const lp = stage?.room.localParticipant;
  return Boolean(lp?.permissions?.canPublish) && stage.meta.speaker === lp.identity;
}

function showFloor() {
  const floor = holdsFloor();
  const pill = $('#floor');
  pill.dataset.floor = floor ? 'yes' : 'no';
  $('#floor-text').textContent = floor ? 'You have the floor' : 'Not on the floor';
  if (stage && !floor) {
    const who = stage.meta.speaker ? stage.speakerName(stage.meta.speaker) : '';
    $('#speaker-line').textContent = who
      ? `The host gave the floor to ${who}. You can still listen; the questions come back with the floor.`
      : 'The host has taken the floor back for now.';
  } else if (floor) {
    $('#speaker-line').textContent = avatarLine();
  }
  document.body.dataset.floor = floor ? 'yes' : 'no';
  $('#mic-toggle').disabled = !floor;
  if (floor && wantMic && !micOn() && !controls.idle() && !rehearsing) startMic().catch(showMicError);
  if (!floor) stopMeter();
  renderMic();
}

function showMeta(meta) {
  if (meta.title) { $('#title').textContent = meta.title; document.title = `${meta.title} · Presenter`; }
  $('#speaker-chip').hidden = !meta.speaker;
  if (meta.speaker) $('#speaker-name').textContent = stage ? stage.speakerName(meta.speaker) : meta.speaker;
  showFloor();
}

const micOn = () => Boolean(stage?.room.localParticipant.isMicrophoneEnabled);
const micPublished = () => Boolean(stage?.room.localParticipant.getTrackPublication(Track.Source.Microphone));
const controls = presenterControls({
  stage: () => stage, changed: () => renderMic(), rehearsing: () => rehearsing,
});

/** A rehearsal starts (mute the stage microphone for everyone) or ends (give it back). */
async function setRehearsing(on) {
  rehearsing = on;
  try {
    if (micPublished()) await controls.silence(on || !wantMic);
  } catch (err) { showMicError(err); }
  showFloor();
}

function renderMic() {
  const on = micOn();
  controls.render({ floor: holdsFloor(), published: micPublished(), on });
  $('#mic-state').textContent = on ? 'live' : 'off';
  $('#mic-state').dataset.state = on ? 'on' : 'off';
  $('#mic-toggle').textContent = rehearsing ? 'Paused while you rehearse'
    : on ? 'Mute microphone' : 'Start microphone';
  $('#mic-toggle').classList.toggle('danger', on);
}

function showMicError(err) {
  $('#mic-state').textContent = `error: ${err.message || err}`;
  $('#mic-state').dataset.state = 'error';
}

async function startMic() {
  const lp = stage.room.localParticipant;
  await lp.setMicrophoneEnabled(true, {
    echoCancellation: $('#opt-echo').checked,
    noiseSuppression: $('#opt-noise').checked,
    autoGainControl: $('#opt-agc').checked,
    deviceId: controls.deviceId(),
  });
  const track = lp.getTrackPublication(Track.Source.Microphone)?.track;
  if (track) startMeter(track.mediaStreamTrack);
  await controls.started();
  renderMic();
}

function startMeter(mediaStreamTrack) {
  stopMeter();
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(new MediaStream([mediaStreamTrack]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  const bar = $('#mic-level');
  let raf = 0;
  const tick = () => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const v of buf) sum += v * v;
    const rms = Math.sqrt(sum / buf.length);
    const level = Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-8) + 60) / 60)); // -60..0 dBFS
    bar.style.width = `${(level * 100).toFixed(1)}%`;
    bar.dataset.level = level.toFixed(2);
    raf = requestAnimationFrame(tick);
  };
  tick();
  meter = { ctx, stop: () => { cancelAnimationFrame(raf); ctx.close(); } };
}

function stopMeter() {
  meter?.stop();
  meter = null;
  const bar = $('#mic-level');
  bar.style.width = '0%';
  bar.dataset.level = '0';
}

async function pollQuestions() {
  // asking the avatar is for whoever holds the floor (the server checks too)
  if (!joined || !holdsFloor()) return;
  const data = await api('GET', `/api/webinars/${room}/qa?sort=${qaSort()}`, { token: joined.token });
  $('#questions').replaceChildren(...data.questions.map((q) => questionItem(q, {
    extra: q.state === 'answered' ? [h('span', { class: 'badge tiny votes-badge' }, `▲ ${q.votes}`)] : [
      h('span', { class: 'badge tiny votes-badge' }, `▲ ${q.votes}`),
      h('button', {
        class: 'btn small primary', type: 'button', title: 'The avatar reads it out and answers',
        onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            await api('POST', `/api/webinars/${room}/questions/${q.id}/ask`, { token: joined.token });
          } catch (err) { $('#speaker-line').textContent = err.message; }
          await pollQuestions();
        },
      }, 'Ask avatar')],
  })));
  const total = data.questions.length;
  $('#question-total').textContent = String(total);
  $('#questions-empty').hidden = total > 0;
}

async function join(name) {
  const saved = session.load(room, ROLE);
  const reuse = saved && saved.name === name;
  let identity = reuse ? saved.identity : identityFor(name, 'presenter');
  const body = { identity, name, role: ROLE, code };
  let answer;
  try {
    answer = await api('POST', `/api/webinars/${room}/join`, {
      body: reuse && saved.claim ? { ...body, claim: saved.claim } : body,
    });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 409) throw err;
    identity = identityFor(name, 'presenter');
    answer = await api('POST', `/api/webinars/${room}/join`, { body: { ...body, identity } });
  }
  joined = answer;
  session.save(room, ROLE, { identity: answer.identity, claim: answer.claim, name });
  localStorage.setItem('broadcaster:name', name);
  stage = new Stage({
    root: $('#stage'), botIdentity: answer.bot_identity,
    stackIdentities: answer.stack_identities, captionIdentities: answer.caption_identities,
    onMetadata: showMeta, onState: setPageState, onPermissions: showFloor,
  });
  $('#join-form').hidden = true;
  watchStage(name, body);
  setupRehearsal(room, () => joined?.token, setRehearsing); // before the stage plays
  await stage.connect(answer.url, answer.token);
  followAudience(stage.room);
  // (before preferSound: a stage with no avatar yet may hold that promise)
  qaSort = sortTabs($('#presenter-qa-tabs'), () => pollQuestions().catch(() => {}));
  every(2000, pollQuestions);
  await stage.preferSound();
  showFloor();
}

// --- issue 15: the truth about the avatar, stage slates, reconnect banner, rejoin ---
let avatarState = 'waiting';

function avatarLine() {
  if (avatarState === 'live') {
    return 'Speak naturally: the avatar answers you, and everyone watching hears you both.';
  }
  if (avatarState === 'ended') return 'The webinar has ended.';
  return avatarState === 'away'
    ? 'The avatar is reconnecting: it cannot hear or answer you until it is back (a few seconds).'
    : 'The avatar is not on stage yet: it will answer you once it has started.';
}

function watchStage(name, body) {
  const status = new StageStatus({
    stage,
    rejoin: () => rejoinToken(name, body),
    onAvatar: (state) => { avatarState = state; showFloor(); },
    // issue 14: the stage room's node died (the picture froze while the bot is live):
    // join again through the web app; LiveKit re-homes the room, the bot joins it again
    onFrozen: () => { status.rejoinNow(); },
  });
}

/** A fresh token for the same identity, through the web app's join with our claim. */
async function rejoinToken(name, body) {
  const saved = session.load(room, ROLE) || {};
  const answer = await api('POST', `/api/webinars/${room}/join`, {
    body: { ...body, identity: saved.identity || joined.identity, ...(saved.claim ? { claim: saved.claim } : {}) },
  });
  session.save(room, ROLE, { identity: answer.identity, claim: answer.claim, name });
  joined = answer;
  return answer;
}

async function main() {
  if (!room) return;
  $('#join-name').value = localStorage.getItem('broadcaster:name') || '';
  if (!await openWebinar(room, { showMeta, setPageState })) return;
  if (!code) $('#join-error').textContent = 'This link has no presenter code; ask the host for the invite link.';

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
    } finally {
      $('#join-button').disabled = false;
    }
  });

  $('#mic-toggle').addEventListener('click', async () => {
    try {
      if (micOn()) {
        wantMic = false;
        await stage.room.localParticipant.setMicrophoneEnabled(false);
        stopMeter();
      } else {
        wantMic = true;
        await startMic();
      }
    } catch (err) { showMicError(err); }
    renderMic();
  });

  const saved = session.load(room, ROLE);
  if (saved?.name) {
    $('#join-name').value = saved.name;
    $('#join-form').requestSubmit();
  }
}

main();
