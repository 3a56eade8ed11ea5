// The audience count from LiveKit itself: the server pushes the room's participant
// count to every connected page (at most every 5 s), counting everyone but agents (the
// bot's token is of kind "agent") — no page polls the web app for it.
//
// That count still holds the presenter and any host console watching the stage; they
// are not the audience. Both are visible participants with a ``role`` attribute from
// their token (roles.py), so each page takes away the ones it sees, itself included.
import { RoomEvent } from '/static/vendor/livekit-client.esm.mjs';
import { $ } from '/static/js/common.js';

/** Roles that LiveKit counts but that are not the audience. */
const STAFF = new Set(['presenter', 'host', 'bot']);

/** Participants in ``room`` that LiveKit counts and that are not the audience. */
export function staffIn(room) {
  let n = 0;
  for (const p of [room.localParticipant, ...room.remoteParticipants.values()]) {
    if (!p || p.isAgent) continue; // agents are not in numParticipants anyway
    if (STAFF.has(p.attributes?.role)) n += 1;
  }
  return n;
}

/** Show the audience (``room.numParticipants`` less the staff) in #audience-count. */
export function followAudience(room) {
  const el = $('#audience-count');
  const show = () => {
    if (room.state !== 'connected') return;
    // LiveKit's count reaches a page that just joined up to 5 s stale (without itself):
    // a viewer's own page is one of the audience whatever it says
    const self = STAFF.has(room.localParticipant?.attributes?.role) ? 0 : 1;
    const audience = Math.max(self, room.numParticipants - staffIn(room));
    el.textContent = String(audience);
    el.dataset.source = 'livekit';
    el.dataset.participants = String(room.numParticipants);
  };
  for (const ev of [RoomEvent.Connected, RoomEvent.Reconnected, RoomEvent.ParticipantConnected,
    RoomEvent.ParticipantDisconnected, RoomEvent.RoomMetadataChanged,
    RoomEvent.ParticipantAttributesChanged]) room.on(ev, show);
  setInterval(show, 1000); // a local read: the count arrives with LiveKit's room updates
  show();
}
