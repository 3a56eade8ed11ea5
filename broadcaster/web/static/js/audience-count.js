// The audience count from LiveKit itself: the server pushes the room's participant
// count to every connected page (at most every 5 s), counting everyone but agents (the
// bot's token is of kind "agent") — no page polls the web app for it.
import { RoomEvent } from '/static/vendor/livekit-client.esm.mjs';
import { $ } from '/static/js/common.js';

/** Show ``room.numParticipants`` in #audience-count while the page lives. */
export function followAudience(room) {
  const el = $('#audience-count');
  const show = () => {
    if (room.state !== 'connected') return;
    el.textContent = String(room.numParticipants);
    el.dataset.source = 'livekit';
  };
  for (const ev of [RoomEvent.Connected, RoomEvent.Reconnected, RoomEvent.ParticipantConnected,
    RoomEvent.ParticipantDisconnected, RoomEvent.RoomMetadataChanged]) room.on(ev, show);
  setInterval(show, 1000); // a local read: the count arrives with LiveKit's room updates
  show();
}
