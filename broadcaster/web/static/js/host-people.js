// Host console: the participant list a page at a time, searchable, with counts per role
// (the server pages it: /participants?q=&offset=&limit=).
import { $, h } from '/static/js/common.js';

const LIMIT = 50;
let offset = 0;
let q = '';

/** Wire the search box and the pager; ``refresh()`` reloads the list. */
export function peopleControls(refresh) {
  let timer = null;
  $('#participant-search').addEventListener('input', (ev) => {
    clearTimeout(timer);
    timer = setTimeout(() => { q = ev.target.value.trim(); offset = 0; refresh(); }, 250);
  });
  $('#participants-prev').addEventListener('click', () => { offset = Math.max(0, offset - LIMIT); refresh(); });
  $('#participants-next').addEventListener('click', () => { offset += LIMIT; refresh(); });
}

/** The query string for the current page and search. */
export function peopleQuery() {
  const params = new URLSearchParams({ offset: String(offset), limit: String(LIMIT) });
  if (q) params.set('q', q);
  return `?${params}`;
}

/** Start again from the first page with no search (another webinar was picked). */
export function resetPeople() {
  offset = 0;
  q = '';
  $('#participant-search').value = '';
}

/** Show the counts per role, the range shown and the pager's state. */
export function showPeopleMeta(data) {
  const order = ['viewer', 'presenter', 'bot', 'host', 'unknown'];
  const roles = Object.keys(data.counts).sort((a, b) => order.indexOf(a) - order.indexOf(b));
  $('#role-counts').replaceChildren(...roles.map((r) => h('span', {
    class: `badge tiny role-${r}`, dataset: { role: r, count: data.counts[r] },
  }, `${r} ${data.counts[r].toLocaleString()}`)));
  const first = data.matching ? data.offset + 1 : 0;
  const last = data.offset + data.participants.length;
  $('#participants-range').textContent = data.matching === data.total
    ? `${first}–${last} of ${data.total}` : `${first}–${last} of ${data.matching} matching (${data.total} in the room)`;
  $('#participants-prev').disabled = data.offset === 0;
  $('#participants-next').disabled = last >= data.matching;
  if (data.offset > 0 && data.participants.length === 0) { // the list shrank under us
    offset = Math.max(0, data.matching - LIMIT);
  }
}
