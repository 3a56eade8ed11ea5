// Host console: the queue of raised hands (one click hands the floor over) and the
// Q&A moderation (most voted / newest; ask the avatar, answered, hide or show).
import { $, api, h, timeOf } from '/static/js/common.js';
import { questionItem, sortTabs } from '/static/js/qa.js';

/**
 * Wire the hands and questions cards. ``ctx`` gives { key(), room(), toast(msg, kind),
 * fail(err), after() } (after: what to refresh once the floor moved).
 */
export function hostAudience(ctx) {
  const sort = sortTabs($('#host-qa-tabs'), () => refreshQuestions());
  const call = (method, path, body) => api(method, path, { token: ctx.key(), body });

  function button(label, cls, fn) {
    return h('button', {
      class: `btn small ${cls}`, type: 'button',
      onclick: async (ev) => {
        ev.currentTarget.disabled = true;
        try { await fn(); } catch (err) { ctx.fail(err); }
        await Promise.allSettled([refreshHands(), refreshQuestions()]);
      },
    }, label);
  }

  async function refreshHands() {
    const room = ctx.room();
    if (!room) return;
    const data = await call('GET', `/api/host/webinars/${room}/hands`);
    if (ctx.room() !== room) return;
    const base = `/api/host/webinars/${room}/hands`;
    $('#hands').replaceChildren(...data.hands.map((p, i) => h('li', { class: 'hand', dataset: { identity: p.identity } },
      h('span', { class: 'hand-pos' }, String(i + 1)),
      h('div', { class: 'who' }, h('strong', {}, p.name),
        h('span', { class: 'muted small' }, ` ${p.identity} · ${timeOf(p.raised_at)}`)),
      button('Give floor', 'primary', async () => {
        await call('POST', `${base}/${encodeURIComponent(p.identity)}/floor`);
        ctx.toast(`${p.name} has the floor`);
        await ctx.after();
      }),
      button('Lower', 'ghost', async () => {
        await call('DELETE', `${base}/${encodeURIComponent(p.identity)}`);
      }))));
    $('#hand-total').textContent = String(data.hands.length);
    $('#hands-empty').hidden = data.hands.length > 0;
  }

  async function refreshQuestions() {
    const room = ctx.room();
    if (!room) return;
    const data = await call('GET', `/api/host/webinars/${room}/qa?sort=${sort()}`);
    if (ctx.room() !== room) return;
    const base = `/api/host/webinars/${room}/questions`;
    const setState = (q, state) => call('POST', `${base}/${q.id}`, { state });
    $('#host-questions').replaceChildren(...data.questions.map((q) => questionItem(q, {
      extra: [
        h('span', { class: 'badge tiny votes-badge', title: 'votes' }, `▲ ${q.votes}`),
        q.state !== 'hidden' ? button('Ask avatar', 'primary', async () => {
          await call('POST', `${base}/${q.id}/ask`);
          ctx.toast(`The avatar takes ${q.name}'s question`);
        }) : null,
        q.state === 'open' ? button('Answered', 'ghost', () => setState(q, 'answered')) : null,
        q.state === 'hidden' ? button('Show', 'ghost', () => setState(q, 'open'))
          : button('Hide', 'ghost danger-text', () => setState(q, 'hidden')),
      ].filter(Boolean),
    })));
    $('#host-question-total').textContent = String(data.questions.length);
    $('#host-questions-empty').hidden = data.questions.length > 0;
  }

  return { refreshHands, refreshQuestions };
}
