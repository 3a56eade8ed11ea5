// Presenter page, Rehearse card: a 1:1 talk with the avatar in a room the avatar service
// owns (pipecat's HeyGenTransport, broadcaster/bot/rehearsal.py) before going live.
// Nothing of it reaches the stage or the audience: the page mutes its stage microphone
// (``onRehearsing(true)``) before the rehearsal's own one starts, and gives it back after.
import { Room, RoomEvent, Track } from '/static/vendor/livekit-client.esm.mjs';
import { $, api } from '/static/js/common.js';
import * as P from '/static/js/protocol.js';

let rehearsal = null;  // the livekit-client Room while rehearsing
let onRehearsing = async () => {};

function show(state, text) {
  $('#rehearsal-card').dataset.state = state;
  $('#rehearsal-status').textContent = text;
  $('#rehearse').hidden = state === 'on' || state === 'starting';
  $('#rehearse').disabled = state === 'starting';
  $('#rehearse-end').hidden = state !== 'on';
  $('#rehearsal-video').hidden = state !== 'on';
}

async function start(room, token) {
  show('starting', 'Starting the avatar for your rehearsal…');
  try {
    await onRehearsing(true); // the live stage stops hearing this microphone first
    const way = await api('POST', `/api/webinars/${room}/rehearsal`, { token: token(), body: {} });
    rehearsal = new Room();
    rehearsal
      .on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
        if (participant.identity !== P.AVATAR_IDENTITY) return;
        if (track.kind === Track.Kind.Video) track.attach($('#rehearsal-video'));
        else track.attach(); // the avatar's voice plays in its own audio element
      })
      .on(RoomEvent.Disconnected, () => {
        if (!rehearsal) return;
        rehearsal = null;
        show('off', 'Rehearsal over.');
        onRehearsing(false);
      });
    await rehearsal.connect(way.url, way.token);
    await rehearsal.localParticipant.setMicrophoneEnabled(true);
    show('on', 'Rehearsing: only you and the avatar hear you; the live stage does not. '
      + 'Ask it anything from your notes.');
  } catch (err) {
    const r = rehearsal;
    rehearsal = null;
    r?.disconnect();
    show('off', `Could not start the rehearsal: ${err.message}`);
    await onRehearsing(false);
  }
}

async function end(room, token) {
  const r = rehearsal;
  rehearsal = null;
  await r?.disconnect();
  try { await api('DELETE', `/api/webinars/${room}/rehearsal`, { token: token() }); } catch { /* over anyway */ }
  show('off', 'Rehearsal over.');
  await onRehearsing(false);
}

/**
 * Wire the Rehearse card; ``token()`` returns the presenter's stage token once joined;
 * ``rehearsing(on)`` silences the stage microphone (true) or gives it back (false).
 */
export function setupRehearsal(room, token, rehearsing) {
  if (rehearsing) onRehearsing = rehearsing;
  $('#rehearsal-card').hidden = false;
  $('#rehearse').addEventListener('click', () => start(room, token));
  $('#rehearse-end').addEventListener('click', () => end(room, token));
  show('off', 'Try your notes with the avatar, 1:1, before you go live.');
}
