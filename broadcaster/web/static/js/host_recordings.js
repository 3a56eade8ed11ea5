// Host console, Recordings card: the webinar's recording (one continuous file across bot
// restarts) and its WebVTT captions, downloaded with the host key (never in a URL).
import { $, h } from '/static/js/common.js';

function size(bytes) {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

async function download(room, file, key) {
  const r = await fetch(`/api/host/webinars/${encodeURIComponent(room)}/recordings/${encodeURIComponent(file)}`,
    { headers: { Authorization: `Bearer ${key}` } });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || `HTTP ${r.status}`);
  const url = URL.createObjectURL(await r.blob());
  const a = h('a', { href: url, download: `${room}-${file.replace(/\.part$/, '')}` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function link(room, file, label, key, onError) {
  return h('button', {
    class: 'btn small ghost', type: 'button', dataset: { file },
    onclick: async (ev) => {
      const button = ev.currentTarget; // null once the handler awaits
      button.disabled = true;
      try { await download(room, file, key); } catch (err) { onError(err); }
      button.disabled = false;
    },
  }, label);
}

/** Fill the Recordings card for ``room``; ``hostApi`` is the console's authorized fetch. */
export async function refreshRecordings(room, hostApi, key, onError) {
  const data = await hostApi('GET', `/api/host/webinars/${room}/recordings`);
  $('#recordings').replaceChildren(...data.recordings.map((r) => h('li', { class: 'recording', dataset: { file: r.file } },
    h('div', { class: 'who' },
      h('strong', {}, r.file.replace(/\.part$/, '')),
      h('span', { class: 'muted small' },
        `${size(r.bytes)}${r.duration_s ? ` · ${Math.round(r.duration_s / 60)} min` : ''}`
        + (r.state === 'recording' ? ' · recording now' : ''))),
    h('div', { class: 'row' },
      link(room, r.file, 'Video', key, onError),
      r.subtitles ? link(room, r.subtitles, 'Captions (WebVTT)', key, onError) : null))));
  $('#recordings-empty').hidden = data.recordings.length > 0;
}
