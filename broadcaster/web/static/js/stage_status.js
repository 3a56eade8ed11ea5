// Honest stage states (issue 15): what the stage shows when the avatar is not on it, the
// "reconnecting" banner, the connection-quality dot, and rejoining through the web app
// when LiveKit drops the page for good (a restarted server lost the room).
//
// The avatar is "live" only while the bot is in the room, says so (its `avatar`
// participant attribute), and its picture keeps moving; otherwise the stage shows a slate
// with the webinar's title: "Starting soon" before the avatar was ever seen, "Back in a
// moment" after, "This webinar has ended" at the end.
import { RoomEvent, DisconnectReason } from '/static/vendor/livekit-client.esm.mjs';
import { $, h } from '/static/js/common.js';

const STALL_MS = 1500;      // a picture frozen this long is not a live avatar
const CHECK_MS = 250;
const REJOIN_MIN_MS = 500;
const REJOIN_MAX_MS = 4000;
const FROZEN_MS = 2500;     // the bot says it is live, yet no picture this long (counted from
                            // the last picture, not from the slate STALL_MS later): its node is gone
const QUALITY_TEXT = { excellent: 'excellent signal', good: 'good signal', poor: 'poor signal', lost: 'signal lost' };

export const AVATAR_ATTR = 'avatar';   // the bot's participant attribute: live | restarting

export class StageStatus {
  /**
   * @param {object} opts
   * @param {import('./stage.js').Stage} opts.stage
   * @param {() => Promise<{url: string, token: string}>} [opts.rejoin]  a fresh token through
   *        the web app's join API (with the page's claim); called when LiveKit drops us for good
   * @param {(state: string) => void} [opts.onAvatar]  'waiting' | 'live' | 'away' | 'ended'
   * @param {() => void} [opts.onFrozen]  the bot is (as far as LiveKit told us) in the room
   *        and live, yet its picture stopped: the room's LiveKit node died (issue 14; its
   *        events stop too, so the SDK notices late); called once per freeze
   * @param {boolean} [opts.returning]  the page lost its room and joined again: it says
   *        "Reconnecting…" until the avatar plays, and "Back in a moment", not "Starting soon"
   */
  constructor({ stage, rejoin, onAvatar, onFrozen, returning }) {
    this.onFrozen = onFrozen || null;
    this.frozenSince = 0;
    this.readySince = 0;
    this.returning = Boolean(returning);
    this.stopped = false;
    this.stage = stage;
    this.root = stage.root;
    this.video = stage.video;
    this.rejoinWith = rejoin;
    this.onAvatar = onAvatar || (() => {});
    this.everLive = this.returning;
    this.avatar = '';
    this.lastFrames = -1;
    this.lastProgress = 0;
    this.rejoining = false;
    this.slate = this.#slateElements();
    this.banner = this.#banner();
    this.dot = this.#qualityDot();
    this.#wire();
    if (this.returning) this.#showBanner('Reconnecting…');
    this.timer = setInterval(() => this.update(), CHECK_MS);
    this.update();
  }

  #slateElements() {
    const holder = $('.stage-placeholder', this.root);
    let title = $('.slate-title', holder);   // a page may watch the stage again
    if (!title) { title = h('p', { class: 'slate-title' }); holder.prepend(title); }
    return { holder, title, message: $('#stage-message', this.root) };
  }

  #banner() {
    const old = $('.reconnect-banner', this.root);
    if (old) return old;
    const el = h('div', { class: 'reconnect-banner', role: 'status', hidden: true }, 'Reconnecting…');
    this.root.append(el);
    return el;
  }

  // The dot sits beside the connection state with a word a viewer can read (a bare dot
  // at the far edge of the bar meant nothing without hovering it).
  #qualityDot() {
    const old = document.querySelector('.quality-dot');
    if (old) { this.#quality('unknown', old); return old; }
    const el = h('span', { class: 'quality-dot', dataset: { quality: 'unknown' } });
    const group = h('span', { class: 'quality', title: 'connection quality' }, el,
      h('span', { class: 'quality-label' }));
    const conn = document.getElementById('conn-state');
    if (conn) {
      const status = h('span', { class: 'conn-group' });
      conn.replaceWith(status);
      status.append(conn, group);
    } else {
      $('.stage-top', this.root)?.append(group);
    }
    return el;
  }

  #wire() {
    const room = this.stage.room;
    room
      .on(RoomEvent.ConnectionQualityChanged, (quality, participant) => {
        if (participant === room.localParticipant) this.#quality(quality);
      })
      .on(RoomEvent.SignalReconnecting, () => this.#showBanner('Reconnecting…'))
      .on(RoomEvent.Reconnecting, () => this.#showBanner('Reconnecting…'))
      .on(RoomEvent.Reconnected, () => this.#hideBanner())
      .on(RoomEvent.Disconnected, (reason) => this.#dropped(reason))
      .on(RoomEvent.ParticipantAttributesChanged, () => this.update())
      .on(RoomEvent.ParticipantConnected, () => this.update())
      .on(RoomEvent.ParticipantDisconnected, () => this.update());
  }

  #quality(quality, dot = this.dot) {
    dot.dataset.quality = quality;
    const group = dot.parentElement;
    if (group) group.title = `connection quality: ${quality}`;
    const label = group?.querySelector('.quality-label');
    if (label) label.textContent = QUALITY_TEXT[quality] || '';
  }

  #showBanner(text) { this.banner.textContent = text; this.banner.hidden = false; }
  #hideBanner() { this.banner.hidden = true; }

  /** LiveKit dropped the page: unless the webinar ended, rejoin through the web app. */
  async #dropped(reason) {
    if (this.stopped) return;  // the page left this room itself and watches another
    const ended = reason === DisconnectReason.ROOM_DELETED
      || reason === DisconnectReason.CLIENT_INITIATED || this.stage.meta.state === 'ended';
    if (ended || !this.rejoinWith || this.rejoining) { this.#hideBanner(); return; }
    await this.#rejoinLoop();
  }

  /**
   * Leave and join again through the web app now: the live avatar's picture froze, so the
   * room's LiveKit node is gone (issue 14: the stage room's node; the SDK notices ~12 s
   * late). The presenter's page calls it from onFrozen; the bot joins the room again too.
   */
  async rejoinNow() {
    if (!this.rejoinWith || this.rejoining) return;
    this.rejoining = true;  // our own disconnect below is not a drop
    try { await this.stage.disconnect(); } catch { /* gone already */ }
    await this.#rejoinLoop();
  }

  async #rejoinLoop() {
    this.rejoining = true;
    this.#showBanner('Reconnecting…');
    let wait = REJOIN_MIN_MS;
    while (this.rejoining) {
      try {
        const { url, token } = await this.rejoinWith();
        await this.stage.reconnect(url, token);
        break;
      } catch (err) {
        if (err?.status && err.status >= 400 && err.status < 500 && err.status !== 429) {
          this.#showBanner('Disconnected. Reload to rejoin.');  // refused for good (banned, ended)
          this.rejoining = false;
          return;
        }
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, REJOIN_MAX_MS);
      }
    }
    this.rejoining = false;
    this.#hideBanner();
    this.update();
  }

  /** Whether the avatar's picture moved in the last STALL_MS. */
  #moving(now) {
    const q = this.video.getVideoPlaybackQuality?.();
    const frames = q ? q.totalVideoFrames : Math.round(this.video.currentTime * 1000);
    if (frames !== this.lastFrames) { this.lastFrames = frames; this.lastProgress = now; }
    return this.root.dataset.video === 'on' && now - this.lastProgress < STALL_MS;
  }

  #botState() {
    const bot = this.stage.room.remoteParticipants?.get(this.stage.botIdentity);
    if (!bot) return 'absent';
    return bot.attributes?.[AVATAR_ATTR] || 'live';  // a bot from before attributes: trust frames
  }

  /** Work out what the stage shows; cheap, runs every CHECK_MS. */
  update() {
    const now = performance.now();
    const moving = this.#moving(now);
    let state;
    if (this.stage.meta.state === 'ended' || this.root.dataset.state === 'ended') state = 'ended';
    else if (this.#botState() === 'live' && moving) state = 'live';
    else state = this.everLive ? 'away' : 'waiting';
    if (state === 'live') {
      this.everLive = true;
      if (this.returning) { this.returning = false; this.#hideBanner(); }
    }
    // a frozen picture counts only while the rest says "live avatar, visible, connected";
    // it counts from the last picture, or from when the rest became true (a tab shown again)
    const ready = this.everLive && this.#botState() === 'live'
      && this.stage.room.state === 'connected' && this.#onScreen();
    if (!ready) this.readySince = 0;
    else if (!this.readySince) this.readySince = now;
    this.#frozen(now, state !== 'live' && ready);
    const title = this.stage.meta.title || document.getElementById('title')?.textContent || '';
    this.slate.title.textContent = title;
    if (state !== this.avatar) {
      this.avatar = state;
      this.root.dataset.avatar = state;
      this.slate.message.textContent = {
        waiting: 'Starting soon', away: 'Back in a moment', ended: 'This webinar has ended', live: '',
      }[state];
      this.onAvatar(state);
    }
  }

  /** adaptiveStream pauses a video nobody can see: no frames then is no fault. */
  #onScreen() {
    if (document.visibilityState !== 'visible') return false;
    const r = this.video.getBoundingClientRect();
    return r.width > 0 && r.bottom > 0 && r.top < window.innerHeight;
  }

  #frozen(now, frozen) {
    if (!frozen) { this.frozenSince = 0; return; }
    if (!this.frozenSince) this.frozenSince = Math.max(this.lastProgress, this.readySince);
    if (this.frozenSince > 0 && now - this.frozenSince >= FROZEN_MS && this.onFrozen) {
      this.frozenSince = -1;  // once per freeze
      this.onFrozen();
    }
  }

  stop() { clearInterval(this.timer); this.rejoining = false; this.stopped = true; }

  /** The page leaves this room to join another (viewer.js's rejoin): say so, then stop. */
  leaving() { this.#showBanner('Reconnecting…'); this.stop(); }
}
