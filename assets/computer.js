// "On the computer", imported on first use: the Claude Code sessions started at the computer (GET
// /api/claude-sessions), newest first and paged, to carry one on here (POST …/adopt); and an adopted conversation's
// history from the session file (GET /api/conversations/{id}/history), shown above our own turns a page at a time
// from the end, with the same turn renderer as ours.

import { api, getJSON } from './api.js';
import { el } from './markdown.js';
import { $, flash, state, TurnView, userBubble } from './turn.js';

const PAGE = 30;

// Lists the sessions into `ul`: `project` narrows them (the list's filter), `ago` and `projectName` say when and
// where as the conversation list does, and `adopted(conv)` opens the conversation a tap made.
export async function showSessions(ul, { project = '', ago, projectName, adopted }) {
  const seq = (showSessions.seq = (showSessions.seq || 0) + 1);
  ul.replaceChildren(el('li', 'empty', 'Looking on the computer…'));
  const more = async (cursor, after) => {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (project) q.set('project', project);
    if (cursor) q.set('cursor', cursor);
    let page;
    try {
      page = await getJSON(`/api/claude-sessions?${q}`);
    } catch (e) {
      if (seq === showSessions.seq) ul.replaceChildren(el('li', 'empty', `Could not list the computer's sessions: ${e.message}`));
      return;
    }
    if (seq !== showSessions.seq) return;
    if (after) after.remove();
    else ul.replaceChildren();
    if (!cursor && !page.sessions.length) {
      ul.append(el('li', 'empty', project
        ? 'No Claude Code sessions on the computer in this project.'
        : 'No Claude Code sessions on the computer in the allowed projects.'));
    }
    for (const s of page.sessions) ul.append(row(s, { ago, projectName, adopted }));
    if (page.next) {
      const li = el('li', 'more');
      const b = el('button', 'older', 'More sessions');
      b.type = 'button';
      b.addEventListener('click', () => { b.disabled = true; more(page.next, li); });
      li.append(b);
      ul.append(li);
    }
  };
  await more(null, null);
}

function row(s, { ago, projectName, adopted }) {
  const li = el('li');
  const b = el('button', 'conv desk-session');
  b.type = 'button';
  b.dataset.session = s.id;
  const top = el('span', 'conv-top');
  top.append(el('span', 'conv-title', s.title || 'Untitled session'));
  b.append(top);
  const count = `${s.messages_exact ? '' : '~'}${s.messages} message${s.messages === 1 ? '' : 's'}`;
  const meta = el('span', 'conv-meta', [ago(s.last_activity), count].filter(Boolean).join(' · '));
  const where = el('span', 'conv-project', projectName(s.cwd));
  where.title = s.cwd;
  meta.prepend(where, ' · ');
  b.append(meta);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      const conv = await (await api('POST', `/api/claude-sessions/${encodeURIComponent(s.id)}/adopt`)).json();
      await adopted(conv);
    } catch (e) {
      flash(`Could not carry on this session: ${e.message}`);
    } finally {
      b.disabled = false;
    }
  });
  li.append(b);
  return li;
}

// Puts the session file's history at the top of `box` (above our own turns), its latest page first, and earlier
// pages with "Earlier on the computer" (tapped, or scrolled into view). `gen`: the open conversation's generation.
export async function showHistory(box, id, gen) {
  const part = el('div', 'history');
  part.append(el('div', 'history-note', 'Carried on from the computer'));
  box.prepend(part);
  await earlier(part, id, gen, null);
  if (gen === state.gen) box.scrollTop = box.scrollHeight;
}

async function earlier(part, id, gen, before) {
  const q = new URLSearchParams({ limit: '40' });
  if (before) q.set('before', before);
  let page;
  try {
    page = await getJSON(`/api/conversations/${encodeURIComponent(id)}/history?${q}`);
  } catch (e) {
    if (gen === state.gen) flash(`Could not load the computer's history: ${e.message}`);
    return;
  }
  if (gen !== state.gen) return;
  const box = $('messages');
  const frag = document.createDocumentFragment();
  if (page.before) frag.append(earlierButton(part, id, gen, page.before));
  else frag.append(el('div', 'history-note', 'Start of the session'));
  renderItems(frag, page.items);
  const below = box.scrollHeight - box.scrollTop;
  const old = part.querySelector(':scope > .older, :scope > .history-start');
  // The page goes above what is shown (after the note that ends the file's part, which stays last).
  if (old) old.replaceWith(frag);
  else part.prepend(frag);
  box.scrollTop = box.scrollHeight - below; // keep what the reader looked at in place
}

function earlierButton(part, id, gen, before) {
  const b = el('button', 'older', 'Earlier on the computer');
  b.type = 'button';
  let asked = false;
  const go = () => {
    if (asked) return;
    asked = true;
    b.disabled = true;
    observer.disconnect();
    earlier(part, id, gen, before);
  };
  b.addEventListener('click', go);
  // Scrolled up to it: the page before comes by itself.
  const observer = new IntersectionObserver((seen) => { if (seen.some((s) => s.isIntersecting)) go(); },
    { root: $('messages') });
  requestAnimationFrame(() => { if (b.isConnected) observer.observe(b); });
  return b;
}

// The items as turns: a user item starts one, the rest go in the turn before them (one begun on an earlier page
// gets a turn without its prompt). Drawn by the same view as our own turns, without their footer.
function renderItems(frag, items) {
  let view = null;
  let n = 0;
  const end = () => {
    if (!view) return;
    view.queueEl.hidden = true;
    view.setStatus('succeeded');
    view.foot.hidden = true;
  };
  const current = () => {
    if (!view) { view = new TurnView(`history-${n++}`, null); frag.append(view.el); }
    return view;
  };
  for (const item of items) {
    if (item.kind === 'user') {
      end();
      view = null;
      frag.append(userBubble(item.text));
      current();
    } else if (item.kind === 'assistant') current().apply('message', { text: item.text });
    else if (item.kind === 'thinking') current().apply('thinking', { text: item.text, complete: true });
    else if (item.kind === 'tool') {
      const v = current();
      const tid = `h${n}-${v.tools.size}`;
      v.apply('tool_use', { id: tid, name: item.name || 'Tool', input: item.input ?? {} });
      if (item.result != null) v.apply('tool_result', { tool_use_id: tid, content: item.result, is_error: item.is_error });
    }
  }
  end();
}
