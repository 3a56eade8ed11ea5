// Raise hand (viewer side): the hand goes up and down through the web app (viewers
// publish nothing into the room); while it is up the page asks where it stands, and
// it tells the viewer when the host gives them the floor.
import { $, api, h, tokenOf } from '/static/js/common.js';

const POLL_MS = 4000;
const ordinal = (n) => {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
};

/** A short notice over the page (the viewer page has no toast of its own). */
export function notice(text, kind = 'info') {
  let el = $('#notice');
  if (!el) {
    el = h('div', { id: 'notice', class: 'toast', role: 'status' });
    document.body.append(el);
  }
  el.textContent = text;
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

/**
 * The hand card of the viewer page: a toggle, its state, its place in the queue.
 * Returns { onFloor(has) } for the page to call when its publish permission changes.
 */
export function startHands({ room, token, card }) {
  const button = $('#hand-toggle', card);
  const status = $('#hand-status', card);
  let state = { raised: false, position: null, speaker: false };
  let timer = null;
  let floor = false;

  function show() {
    card.dataset.hand = state.raised ? 'up' : 'down';
    button.textContent = state.raised ? 'Lower hand' : 'Raise hand';
    button.classList.toggle('primary', !state.raised);
    button.setAttribute('aria-pressed', String(state.raised));
    button.disabled = floor;
    card.hidden = floor;  // the floor card says it all: no greyed-out "Raise hand" beside it
    status.textContent = floor ? 'You have the floor.'
      : state.raised ? `Your hand is up${state.position ? ` (${ordinal(state.position)} in line)` : ''}. The host will see it.`
        : 'Want to speak? Raise your hand and the host can give you the floor.';
    clearTimeout(timer);
    if (state.raised && !floor) timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    try {
      const was = state.raised;
      state = await api('GET', `/api/webinars/${room}/hand`, { token: tokenOf(token) });
      if (was && !state.raised && !state.speaker && !floor) notice('The host lowered your hand.');
    } catch { /* next tick */ }
    show();
  }

  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      state = await api('POST', `/api/webinars/${room}/hand`, { token: tokenOf(token), body: { raised: !state.raised } });
    } catch (err) {
      status.textContent = err.message;
      button.disabled = false;
      return;
    }
    show();
  });
  card.hidden = false;
  show();
  return {
    onFloor(has) {
      if (has && !floor) {
        notice('The host gave you the floor: turn on your microphone to talk with the avatar.', 'ok');
        state = { raised: false, position: null, speaker: true };
      }
      floor = has;
      show();
    },
  };
}
