// Presenter controls: which microphone, optional push-to-talk (hold Space, or hold the
// button), and a mute state nobody can miss (a banner in the microphone card and a
// badge on the stage). Push-to-talk mutes the published track (LiveKit mutes it for
// everyone at once) instead of unpublishing it, so talking starts without a new track.
import { Room, Track } from '/static/vendor/livekit-client.esm.mjs';
import { $, h } from '/static/js/common.js';

const PTT_KEY = 'broadcaster:push-to-talk';
const MIC_KEY = 'broadcaster:microphone';
const TYPING = new Set(['INPUT', 'TEXTAREA', 'SELECT']);

const BANNER = {
  live: ['On air: everyone hears you', 'i-mic'],
  ptt: ['Muted: hold Space to talk', 'i-mic-off'],
  muted: ['Muted: nobody hears you', 'i-mic-off'],
  off: ['Microphone off', 'i-mic-off'],
  nofloor: ['Not on the floor: nobody hears you', 'i-mic-off'],
  rehearsal: ['Rehearsing: the live stage does not hear you', 'i-mic-off'],
};

/**
 * ``stage()`` returns the connected Stage (or null); ``changed()`` is called whenever
 * the microphone's state may have changed (the page re-renders); while ``rehearsing()``
 * the stage microphone stays muted whatever is held or clicked.
 */
export function presenterControls({ stage, changed, rehearsing = () => false }) {
  const select = $('#mic-device');
  const ptt = $('#opt-ptt');
  const hold = $('#ptt-hold');
  ptt.checked = localStorage.getItem(PTT_KEY) === '1';
  let held = false;
  const badge = h('span', { id: 'mute-badge', class: 'mute-badge', hidden: true },
    h('span', { class: 'icon i-mic-off' }), 'MUTED');
  $('#stage .stage-top')?.append(badge);

  const micTrack = () => stage()?.room.localParticipant.getTrackPublication(Track.Source.Microphone)?.track;

  async function listDevices(ask = false) {
    let devices = [];
    try { devices = await Room.getLocalDevices('audioinput', ask); } catch { return; }
    const saved = localStorage.getItem(MIC_KEY);
    const active = stage()?.room.getActiveDevice('audioinput');
    select.replaceChildren(...devices.filter((d) => d.deviceId).map((d, i) => h('option', { value: d.deviceId },
      d.label || `Microphone ${i + 1}`)));
    const pick = [active, saved].find((id) => id && devices.some((d) => d.deviceId === id));
    if (pick) select.value = pick;
    select.disabled = devices.length === 0;
  }

  /** Mark on the picker which device the published track really captures from. */
  function showLive() {
    const track = micTrack()?.mediaStreamTrack;
    select.dataset.live = track?.getSettings().deviceId || '';
    select.dataset.track = track?.id || '';
  }

  async function talk(on) {
    const track = micTrack();
    if (!track) return;
    if (on && !rehearsing()) await track.unmute(); else await track.mute();
    changed();
  }

  const isTyping = (el) => TYPING.has(el?.tagName) || el?.isContentEditable;
  window.addEventListener('keydown', (ev) => {
    if (!ptt.checked || ev.code !== 'Space' || isTyping(ev.target)) return;
    ev.preventDefault(); // no page scroll, no button press
    if (ev.repeat || held) return;
    held = true;
    talk(true);
  });
  window.addEventListener('keyup', (ev) => {
    if (ev.code !== 'Space' || !held) return;
    held = false;
    talk(false);
  });
  window.addEventListener('blur', () => { if (held) { held = false; talk(false); } });
  hold.addEventListener('pointerdown', () => { if (ptt.checked) { held = true; talk(true); } });
  for (const ev of ['pointerup', 'pointerleave', 'pointercancel']) {
    hold.addEventListener(ev, () => { if (held) { held = false; talk(false); } });
  }
  ptt.addEventListener('change', () => {
    localStorage.setItem(PTT_KEY, ptt.checked ? '1' : '0');
    held = false;
    talk(!ptt.checked);
  });
  select.addEventListener('change', async () => {
    localStorage.setItem(MIC_KEY, select.value);
    const room = stage()?.room;
    if (room && micTrack()) await room.switchActiveDevice('audioinput', select.value);
    showLive();
    changed();
  });
  navigator.mediaDevices?.addEventListener?.('devicechange', () => listDevices());
  listDevices();

  return {
    /** the chosen microphone, for the capture options */
    deviceId: () => select.value || localStorage.getItem(MIC_KEY) || undefined,
    /** push-to-talk is on and Space is not held: the microphone stays muted */
    idle: () => ptt.checked && !held,
    /** mute the stage microphone (a rehearsal starts) or apply the choices again (it ended) */
    async silence(on) {
      held = false;
      await talk(!on && !ptt.checked);
    },
    /** the microphone was just started: apply push-to-talk, learn the device names */
    async started() {
      if ((ptt.checked && !held) || rehearsing()) await talk(false);
      await listDevices(true);
      showLive();
    },
    /** show the state: 'live', 'ptt', 'muted', 'off', 'nofloor' or 'rehearsal' */
    render({ floor, published, on }) {
      const state = !floor ? 'nofloor' : rehearsing() ? 'rehearsal' : on ? 'live'
        : published && ptt.checked ? 'ptt' : published ? 'muted' : 'off';
      const banner = $('#mic-banner');
      banner.dataset.state = state;
      const [text, icon] = BANNER[state];
      banner.replaceChildren(h('span', { class: `icon ${icon}` }), h('span', {}, text));
      document.body.dataset.mic = state;
      badge.hidden = !floor || on;
      hold.hidden = !ptt.checked;
      $('#mic-toggle').hidden = ptt.checked && published; // push to talk replaces it
      hold.disabled = !floor || !published || rehearsing();
      $('#mic-toggle').disabled = !floor || rehearsing();
    },
  };
}
