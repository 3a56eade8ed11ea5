// The stage: one LiveKit room connection that shows the avatar (video + audio in one
// <video>), plays the speaker's voice, renders captions and follows the room metadata.
import {
  Room, RoomEvent, Track, DisconnectReason, ParticipantEvent,
} from '/static/vendor/livekit-client.esm.mjs';
import * as P from '/static/js/protocol.js';
import { $, h } from '/static/js/common.js';

const MAX_CAPTION_LINES = 3;
const CAPTION_LINGER_MS = 8000;
const MAX_CAPTION_CHARS = 2000;
const CONNECT_TIMEOUT_MS = 4000;

export class Stage {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.root   the #stage element
   * @param {string} opts.botIdentity identity of the avatar bot (its tracks are the stage)
   * @param {string[]} [opts.stackIdentities]   the stack's participants: the only video shown
   * @param {string[]} [opts.captionIdentities] the only senders whose captions are shown
   * @param {(meta: object) => void} [opts.onMetadata]
   * @param {(state: string) => void} [opts.onState]  connecting|live|reconnecting|ended|disconnected
   * @param {() => void} [opts.onPermissions]          local permissions changed
   */
  constructor({ root, botIdentity, stackIdentities, captionIdentities, onMetadata, onState, onPermissions }) {
    this.root = root;
    this.video = $('#stage-video', root);
    this.captions = $('#captions', root);
    this.unmuteButton = $('#unmute', root);
    this.botIdentity = botIdentity;
    // least privilege on the page too: pictures and words on the stage come from the
    // stack only (a token from before an upgrade, or a bug, must not put them there)
    this.stack = new Set([botIdentity, P.AVATAR_IDENTITY, ...(stackIdentities || [])]);
    this.captionFrom = new Set([botIdentity, ...(captionIdentities || [])]);
    this.onMetadata = onMetadata || (() => {});
    this.onState = onState || (() => {});
    this.onPermissions = onPermissions || (() => {});
    this.meta = {};
    this.videoFrom = null;
    this.audioEls = new Map();
    this.lines = new Map();
    this.room = new Room({ adaptiveStream: true, dynacast: true });
    this.unmuteButton?.addEventListener('click', () => this.unmute());
    // the placeholder stays until real frames play, not merely until a track arrives
    const shown = () => { if (this.videoTrack && this.video.videoWidth > 0) this.root.dataset.video = 'on'; };
    this.video.addEventListener('playing', shown);
    this.video.addEventListener('resize', shown);
    this.#wire();
  }

  #setState(state) {
    this.root.dataset.state = state;
    this.onState(state);
  }

  #wire() {
    const room = this.room;
    room
      .on(RoomEvent.TrackSubscribed, (track, pub, participant) => this.#attach(track, participant))
      .on(RoomEvent.TrackUnsubscribed, (track, pub, participant) => this.#detach(track, participant))
      .on(RoomEvent.RoomMetadataChanged, (metadata) => this.#metadata(metadata))
      // the speaker may join (or be unhidden) after the metadata named them: re-render
      // so pages show their display name, not their identity
      .on(RoomEvent.ParticipantConnected, () => this.onMetadata(this.meta))
      .on(RoomEvent.ParticipantNameChanged, () => this.onMetadata(this.meta))
      .on(RoomEvent.AudioPlaybackStatusChanged, () => this.#audioStatus())
      // the signal connection dropped: the SDK first tries to resume (at 0, 0.3, 1.5, 4.2,
      // 9 s) and says Reconnecting only once a resume failed, 5-9 s after a server restart;
      // the page counts a drop from the first try (a resume that works says Reconnected)
      .on(RoomEvent.SignalReconnecting, () => this.#setState('reconnecting'))
      .on(RoomEvent.Reconnecting, () => this.#setState('reconnecting'))
      .on(RoomEvent.Reconnected, () => this.#setState('live'))
      .on(RoomEvent.Disconnected, (reason) => {
        const ended = reason === DisconnectReason.ROOM_DELETED || this.meta.state === P.ROOM_STATE_ENDED;
        this.#setState(ended ? 'ended' : 'disconnected');
      });
    room.localParticipant.on(ParticipantEvent.ParticipantPermissionsChanged, () => this.onPermissions());
    room.registerTextStreamHandler(P.CAPTION_TOPIC, (reader, from) => this.#caption(reader, from));
  }

  async connect(url, token) {
    this.#setState('connecting');
    // short limits (the SDK's are 15 s): a room on a LiveKit node that just died hangs
    // the connect until LiveKit notices (~5 s); the page sooner asks the join API again
    await this.room.connect(url, token, {
      autoSubscribe: true, websocketTimeout: CONNECT_TIMEOUT_MS, peerConnectionTimeout: CONNECT_TIMEOUT_MS,
    });
    this.#setState('live');
    this.#metadata(this.room.metadata);
    this.#audioStatus();
    return this.room;
  }

  async disconnect() { await this.room.disconnect(); }

  /** Connect again after LiveKit dropped the page for good (a fresh token, same room). */
  async reconnect(url, token) { return this.connect(url, token); }

  get identity() { return this.room.localParticipant?.identity; }

  #metadata(text) {
    try { this.meta = JSON.parse(text || '{}') || {}; } catch { this.meta = {}; }
    this.onMetadata(this.meta);
    if (this.meta.state === P.ROOM_STATE_ENDED) this.#setState('ended');
  }

  #attach(track, participant) {
    const fromBot = participant.identity === this.botIdentity;
    if (track.kind === Track.Kind.Video) {
      // only the stack's video is the stage (the bot's first; the avatar's in direct mode)
      if (!this.stack.has(participant.identity)) return;
      if (this.videoFrom && this.videoFrom !== participant.identity && !fromBot) return;
      if (this.videoTrack && this.videoTrack !== track) this.videoTrack.detach(this.video);
      this.videoTrack = track;
      this.videoFrom = participant.identity;
      track.attach(this.video);
      this.#play();
    } else if (track.kind === Track.Kind.Audio) {
      if (fromBot) {
        track.attach(this.video); // the avatar's voice travels with its picture
      } else {
        const el = track.attach();
        el.dataset.identity = participant.identity;
        this.root.append(el);
        this.audioEls.set(track.sid, el);
      }
      this.#play();
    }
  }

  #detach(track, participant) {
    track.detach();
    const el = this.audioEls.get(track.sid);
    if (el) { el.remove(); this.audioEls.delete(track.sid); }
    if (track === this.videoTrack) {
      this.videoTrack = null;
      this.videoFrom = null;
      this.root.dataset.video = 'off';
    }
  }

  async #play() {
    try {
      await this.video.play();
    } catch {
      // autoplay with sound refused: play muted, offer the unmute button
      this.video.muted = true;
      try { await this.video.play(); } catch { /* nothing to play yet */ }
    }
    this.#audioStatus();
  }

  /** Try sound right away (the user just clicked Join, so the browser usually allows it). */
  async preferSound() {
    this.video.muted = false;
    await this.#play();
  }

  #audioStatus() {
    const blocked = this.video.muted || !this.room.canPlaybackAudio;
    if (this.unmuteButton) this.unmuteButton.hidden = !blocked;
    this.root.dataset.audio = blocked ? 'blocked' : 'on';
  }

  async unmute() {
    this.video.muted = false;
    try { await this.room.startAudio(); } catch { /* ignored */ }
    try { await this.video.play(); } catch { /* ignored */ }
    this.#audioStatus();
  }

  async #caption(reader, from) {
    if (!this.captionFrom.has(from?.identity)) { // only the bot speaks for the avatar
      try { for await (const _ of reader) { /* drained, never shown */ } } catch { /* gone */ }
      return;
    }
    const attrs = reader.info.attributes || {};
    const key = attrs['lk.segment_id'] || reader.info.id;
    const who = attrs[P.CAPTION_SPEAKER_ATTR] || from?.identity || '';
    // a segment's lines are numbered (protocol.py CAPTION_SEQ_ATTR): an older one that
    // completes late, or anything after the final line, is never shown over a newer one
    const seq = Number(attrs[P.CAPTION_SEQ_ATTR] || 0);
    let line = this.lines.get(key);
    if (line && (line.el.dataset.final === 'true' || (seq && seq <= (line.seq || 0)))) {
      try { for await (const _ of reader) { /* stale */ } } catch { /* gone */ }
      return;
    }
    if (!line) {
      line = {
        el: h('p', { class: 'caption', dataset: { speaker: who } },
          h('span', { class: 'caption-who' }, this.#speakerLabel(who)), h('span', { class: 'caption-text' })),
      };
      this.lines.set(key, line);
      this.captions.append(line.el);
      while (this.captions.children.length > MAX_CAPTION_LINES) this.captions.firstElementChild.remove();
    }
    line.seq = seq;
    const textEl = line.el.querySelector('.caption-text');
    let text = '';
    for await (const chunk of reader) {
      if (text.length >= MAX_CAPTION_CHARS || line.seq !== seq) continue; // drain, show no more
      text = (text + chunk).slice(0, MAX_CAPTION_CHARS);
      textEl.textContent = text;
    }
    if (line.seq !== seq) return; // a newer line of the segment took over
    const final = (attrs[P.CAPTION_FINAL_ATTR] ?? 'true') === 'true';
    line.el.dataset.final = String(final);
    if (final) {
      clearTimeout(line.timer);
      line.timer = setTimeout(() => {
        line.el.classList.add('fade');
        setTimeout(() => { line.el.remove(); this.lines.delete(key); }, 600);
      }, CAPTION_LINGER_MS);
    }
  }

  #speakerLabel(identity) {
    if (identity === P.AVATAR_CAPTION_SPEAKER || identity === this.botIdentity) return 'Avatar';
    const p = this.room.remoteParticipants.get(identity);
    if (identity === this.identity) return 'You';
    return p?.name || identity || '';
  }

  speakerName(identity) {
    if (!identity) return '';
    if (identity === this.identity) return 'You';
    return this.room.remoteParticipants.get(identity)?.name || identity;
  }
}
