// Viewer controls on the stage: captions on/off and their size (remembered in this
// browser's localStorage), and fullscreen.
import { $, h } from '/static/js/common.js';

const CAPTIONS_KEY = 'broadcaster:captions';
const SIZE_KEY = 'broadcaster:caption-size';
export const SIZES = ['small', 'medium', 'large', 'huge'];

/** Add the controls to ``stage`` (the #stage element) and apply the saved choices. */
export function viewerControls(stage) {
  let on = localStorage.getItem(CAPTIONS_KEY) !== 'off';
  let size = SIZES.includes(localStorage.getItem(SIZE_KEY)) ? localStorage.getItem(SIZE_KEY) : 'medium';

  const cc = h('button', { id: 'cc-toggle', class: 'ctl', type: 'button', title: 'Captions on or off (c)' }, 'CC');
  const smaller = h('button', { id: 'cc-smaller', class: 'ctl', type: 'button', title: 'Smaller captions', 'aria-label': 'Smaller captions' }, 'A−');
  const bigger = h('button', { id: 'cc-bigger', class: 'ctl', type: 'button', title: 'Bigger captions', 'aria-label': 'Bigger captions' }, 'A+');
  const full = h('button', { id: 'fullscreen', class: 'ctl', type: 'button', title: 'Fullscreen (f)', 'aria-label': 'Fullscreen' },
    h('span', { class: 'icon i-expand' }));
  stage.append(h('div', { class: 'stage-controls', role: 'toolbar', 'aria-label': 'Viewing options' },
    cc, smaller, bigger, full));

  function apply() {
    stage.dataset.captions = on ? 'on' : 'off';
    stage.dataset.captionSize = size;
    cc.setAttribute('aria-pressed', String(on));
    smaller.disabled = !on || size === SIZES[0];
    bigger.disabled = !on || size === SIZES[SIZES.length - 1];
    localStorage.setItem(CAPTIONS_KEY, on ? 'on' : 'off');
    localStorage.setItem(SIZE_KEY, size);
  }
  const step = (d) => { size = SIZES[Math.max(0, Math.min(SIZES.length - 1, SIZES.indexOf(size) + d))]; apply(); };
  async function toggleFullscreen() {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await stage.requestFullscreen();
    } catch (err) { console.warn(err); }
  }
  cc.addEventListener('click', () => { on = !on; apply(); });
  smaller.addEventListener('click', () => step(-1));
  bigger.addEventListener('click', () => step(1));
  full.addEventListener('click', toggleFullscreen);
  stage.addEventListener('dblclick', toggleFullscreen);
  document.addEventListener('fullscreenchange', () => {
    stage.dataset.fullscreen = document.fullscreenElement === stage ? 'on' : 'off';
    full.setAttribute('aria-pressed', String(document.fullscreenElement === stage));
  });
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ['INPUT', 'TEXTAREA', 'SELECT'].includes(ev.target?.tagName)) return;
    if (ev.key === 'c') { on = !on; apply(); } else if (ev.key === 'f') toggleFullscreen();
  });
  apply();
}

export const stageElement = () => $('#stage');
