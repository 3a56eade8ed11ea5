// The audience's Q&A board (viewer side): everyone's questions but hidden ones, newest
// or most voted first, one upvote per viewer (a toggle), answered ones marked.
// Shared rendering for the presenter's and the host's lists is here too.
import { $, api, h, initials, timeOf, tokenOf } from '/static/js/common.js';

const POLL_MS = 5000;

/** One question as a list item; ``extra`` nodes go at its right (buttons, a vote). */
export function questionItem(q, { extra = [], mine = false } = {}) {
  return h('li', {
    class: `q${mine ? ' mine' : ''}`, dataset: { id: q.id, state: q.state || 'open' },
  },
  h('div', { class: 'avatar' }, initials(q.name)),
  h('div', { class: 'q-body' },
    h('div', { class: 'q-meta' }, h('strong', {}, q.name), h('span', { class: 'muted' }, timeOf(q.created_at)),
      q.state === 'answered' ? h('span', { class: 'badge tiny ok q-answered' }, 'answered') : null,
      q.state === 'hidden' ? h('span', { class: 'badge tiny q-hidden' }, 'hidden') : null,
      mine ? h('span', { class: 'badge tiny q-yours' }, 'yours') : null),
    h('p', { class: 'q-text' }, q.text)),
  extra.length ? h('div', { class: 'q-side' }, extra) : null);
}

/** Tabs "Top" / "New" in ``root``; calls ``onChange(sort)``. */
export function sortTabs(root, onChange, initial = 'top') {
  let sort = initial;
  const buttons = ['top', 'new'].map((s) => h('button', {
    type: 'button', class: 'tab', dataset: { sort: s }, 'aria-pressed': String(s === sort),
    onclick: () => {
      sort = s;
      for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.sort === sort));
      onChange(sort);
    },
  }, s === 'top' ? 'Most voted' : 'Newest'));
  root.replaceChildren(...buttons);
  return () => sort;
}

/** The viewer's board. Returns { refresh() } (call it after sending a question). */
export function startBoard({ room, token, list, tabs, empty }) {
  const sort = sortTabs(tabs, () => refresh());
  let timer = null;

  function voteButton(q) {
    return h('button', {
      type: 'button', class: `vote${q.voted ? ' voted' : ''}`, 'aria-pressed': String(q.voted),
      title: q.voted ? 'Take your vote back' : 'Vote for this question',
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try {
          await api('POST', `/api/webinars/${room}/questions/${q.id}/vote`, { token: tokenOf(token), body: { up: !q.voted } });
        } catch (err) { console.warn(err); }
        await refresh();
      },
    }, h('span', { class: 'vote-arrow' }, '▲'), h('span', { class: 'vote-count' }, String(q.votes)));
  }

  async function refresh() {
    clearTimeout(timer);
    timer = setTimeout(refresh, POLL_MS);
    if (document.hidden) return; // a background tab asks nothing
    try {
      const data = await api('GET', `/api/webinars/${room}/qa?sort=${sort()}`, { token: tokenOf(token) });
      list.replaceChildren(...data.questions.map((q) => questionItem(q, { extra: [voteButton(q)], mine: q.mine })));
      empty.hidden = data.questions.length > 0;
    } catch (err) { console.warn(err); }
  }

  refresh();
  return { refresh };
}

export const qaElements = () => ({ list: $('#qa-list'), tabs: $('#qa-tabs'), empty: $('#qa-empty') });
