// The remote-agent web app: sign-in, conversations, and a chat that follows a turn's event stream.
// No framework and no innerHTML: model and tool text only ever reach the DOM through text nodes.
//
// This module starts the app and owns what is around a chat: sign-in and sign-out, the conversation list, opening,
// renaming and deleting a conversation, the app's own dialog, and coming back online. The rest, each imported only
// from the modules above it: compose.js (the composer and sending) → turn.js (a turn on screen, following its
// events, the shared state) → markdown.js (the safe renderer) and api.js (the server, and being offline).
// requests.js (what Claude asks: the cards; the mode and model dialog), push.js (the settings sheet:
// notifications) and computer.js (the computer's own sessions, and an adopted one's history) are loaded from here
// when first needed.

import { api, getJSON, HttpError, NetError, onApiEvents, setOffline } from './api.js';
import { flushPending, loadPending, submit } from './compose.js';
import { el, plain } from './markdown.js';
import {
  $, above, errorCard, flash, follow, money, renderTranscript, resumeLive, setStatus, showError, state, TurnView,
  userBubble,
} from './turn.js';

// When, as people say it ("3 minutes ago"); past a week, the date.
function ago(iso) {
  if (!iso) return '';
  const s = (Date.parse(iso) - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  for (const [unit, n] of [['second', 60], ['minute', 60], ['hour', 24], ['day', 7]]) {
    if (Math.abs(s) < n * ({ second: 1, minute: 60, hour: 3600, day: 86400 })[unit]) {
      return rtf.format(Math.round(s / ({ second: 1, minute: 60, hour: 3600, day: 86400 })[unit]), unit);
    }
  }
  return new Date(iso).toLocaleDateString();
}

// ---------- online / offline ----------

function reconnected() {
  if (state.booting) { state.booting = false; boot(); return; }
  // The open transcript, if it came from the service worker's copy, is fetched again once the unsent messages
  // have gone: one the server already had (its answer was lost as the network went) would be in the new transcript
  // and still on screen as unsent, twice until its send was answered. A send that hangs holds it up 10 s at most.
  Promise.race([flushPending(), new Promise((r) => { setTimeout(r, 10000); })]).then(() => {
    if (state.stale && state.conv) openConv(state.conv.id, true).catch(() => {});
  });
  resumeLive();
  if (!$('shell').hidden) loadList().catch(() => {});
}

window.addEventListener('offline', () => { setOffline(true); resumeLive(); });
window.addEventListener('online', () => setOffline(false));
document.addEventListener('visibilitychange', () => {
  presence();
  if (document.visibilityState !== 'visible') return;
  resumeLive();
  flushPending();
  if (!$('shell').hidden) loadList().catch(() => {});
});

// ---------- sign in ----------

// The service worker's copies of the list and transcript are the signed-in user's: gone with the sign-in.
function forgetCached() {
  if (window.caches) caches.delete('ra-api').catch(() => {});
}

function showLogin() {
  forgetCached();
  state.gen++;
  resumeLive();
  $('shell').hidden = true;
  $('login').hidden = false;
  // Signed out, there is no one to be present: the server forgets it by itself (and would answer 401).
  presentIn = null;
  clearInterval(presenceTimer);
  $('login-user').focus();
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  try {
    await api('POST', '/api/login', { username: $('login-user').value, password: $('login-pass').value });
    $('login-pass').value = '';
    await start();
  } catch (e) {
    $('login-error').textContent = e.status === 401 ? 'Wrong user name or password.'
      : e.status === 429 ? lockedOut(e) : `Could not sign in: ${e.message}`;
  } finally {
    $('login-submit').disabled = false;
  }
});

// Locked out after failed logins: how long, in the server's words ("too many failed logins; try again in 30 s") or
// from its Retry-After; and that until then the right password is refused too, so that trying it is no use.
function lockedOut(e) {
  const wait = /try again/.test(e.message) ? e.message
    : `too many attempts; try again in ${e.retryAfter ? `${e.retryAfter} s` : 'a little while'}`;
  // "30 s" stays on one line.
  const said = wait.replace(/(\d) (s|min)\b/g, '$1\u00a0$2');
  return `${said[0].toUpperCase()}${said.slice(1)}. Until then even the right password is refused.`;
}

$('logout').addEventListener('click', async () => {
  try { await api('POST', '/api/logout'); } catch { /* signed out anyway */ }
  showLogin(); // which forgets the cached list and transcript
});

// ---------- conversations ----------

async function loadList() {
  // Answers can come back out of order: only the latest request's is shown.
  const seq = (state.listSeq = (state.listSeq || 0) + 1);
  const { conversations } = await getJSON('/api/conversations');
  if (seq !== state.listSeq) return;
  state.convs = conversations;
  // The open conversation's header follows the list (its first message names it until it is renamed).
  const open = state.conv && state.convs.find((c) => c.id === state.conv.id);
  if (open) { state.conv = { ...state.conv, ...open }; setTitle(); }
  renderList();
}

// A project as people name it: its directory's last component (the full path in its title).
function projectName(path) {
  return String(path || '').split('/').filter(Boolean).pop() || path || '';
}

// The list's filter by project: a select only when the conversations are in more than one project.
function renderFilter() {
  const projects = [...new Set(state.convs.map((c) => c.project).filter(Boolean))].sort();
  if (!projects.includes(state.projectFilter)) state.projectFilter = '';
  const select = $('project-filter');
  select.replaceChildren(el('option', null, 'All projects'), ...projects.map((p) => {
    const option = el('option', null, projectName(p));
    option.value = p;
    option.title = p;
    return option;
  }));
  select.firstChild.value = '';
  select.value = state.projectFilter || '';
  $('project-filter-pick').hidden = projects.length < 2;
}
$('project-filter').addEventListener('change', () => {
  state.projectFilter = $('project-filter').value;
  renderList();
  if (!$('desk-list').hidden) showTab('computer');
});

// ---------- on the computer ----------

// computer.js, loaded at its first use.
function computer(f) {
  import('./computer.js').then(f).catch((e) => flash(`Could not show the computer's sessions: ${e.message}`));
}

// The list's two tabs: our conversations, and the sessions started on the computer (to carry one on here).
function showTab(which) {
  const desk = which === 'computer';
  $('tab-here').setAttribute('aria-selected', String(!desk));
  $('tab-computer').setAttribute('aria-selected', String(desk));
  $('conv-list').hidden = desk;
  $('desk-list').hidden = !desk;
  if (desk) {
    computer((m) => m.showSessions($('desk-list'), { project: state.projectFilter, ago, projectName, adopted }));
  }
}
$('tab-here').addEventListener('click', () => showTab('here'));
$('tab-computer').addEventListener('click', () => showTab('computer'));

// A session tapped on the computer's tab: its conversation (new, or the one that adopted it before) opens.
async function adopted(conv) {
  showTab('here');
  await loadList().catch(() => {});
  await openConv(conv.id);
}

function renderList() {
  const ul = $('conv-list');
  ul.replaceChildren();
  renderFilter();
  const shown = state.convs.filter((c) => !state.projectFilter || c.project === state.projectFilter);
  if (!shown.length) ul.append(el('li', 'empty', state.convs.length ? 'No conversations in this project.' : 'No conversations yet.'));
  for (const c of shown) {
    const li = el('li');
    const b = el('button', 'conv');
    b.type = 'button';
    if (state.conv && c.id === state.conv.id) b.setAttribute('aria-current', 'true');
    const top = el('span', 'conv-top');
    top.append(el('span', 'conv-title', convName(c)));
    if (c.waiting > 0) top.append(el('span', 'badge waiting', 'waiting for you'));
    else if (c.active_turn_id) top.append(el('span', 'badge', 'running'));
    b.append(top);
    // "messages" here, "steps" under a reply (the CLI's turns): two words for two things.
    const count = `${c.turn_count} message${c.turn_count === 1 ? '' : 's'}`;
    const meta = el('span', 'conv-meta', [ago(c.last_message_at || c.updated_at), count, money(c.total_cost_usd)]
      .filter(Boolean).join(' · '));
    if (c.project) {
      const project = el('span', 'conv-project', projectName(c.project));
      project.title = c.project;
      meta.prepend(project, ' · ');
    }
    b.append(meta);
    b.addEventListener('click', () => openConv(c.id));
    li.append(b);
    ul.append(li);
  }
}

function showView(which) {
  document.body.classList.toggle('show-list', which === 'list');
  presence();
}
$('back').addEventListener('click', () => { showView('list'); loadList().catch(() => {}); });

// "+" opens an empty draft; the conversation is created by its first message, so unused ones never pile up. With
// project roots, the project picker (projects.js) comes first and says where the draft runs.
$('new-conv').addEventListener('click', () => {
  if (!state.roots || !state.roots.length) { startDraft(null); return; }
  import('./projects.js').then((m) => m.openPicker(startDraft))
    .catch((e) => flash(`Could not open the project picker: ${e.message}`));
});

function startDraft(project) {
  clearChat();
  state.conv = null;
  state.draftProject = project;
  setTitle();
  renderList();
  showView('chat');
  $('input').focus();
}

// The bell: the settings sheet (push.js), notifications on this device.
$('settings-open').addEventListener('click', () => {
  import('./push.js').then((m) => m.openSettings()).catch((e) => flash(`Could not open the settings: ${e.message}`));
});

// A new conversation opens at once from the POST's answer: there is no history to fetch.
async function newConv() {
  try {
    // With more than one allowed project, the picker says where new conversations run.
    // A project picked for this draft wins.
    const body = state.draftProject ? { project: state.draftProject }
      : $('project-pick').hidden ? {} : { project: $('project').value };
    const c = await (await api('POST', '/api/conversations', body)).json();
    clearChat();
    state.conv = c;
    state.draftProject = null;
    setTitle();
    showView('chat');
    presence();
    state.convs.unshift(c);
    renderList();
    loadList().catch(() => {});
    return c;
  } catch (e) {
    showError('Could not create a conversation',
      e instanceof NetError ? 'The server is unreachable; send again when it is back.' : e.message);
    throw e;
  }
}

// The header's "⋯" menu: opened by its button, closed by a choice in it, a tap elsewhere or Escape.
function showMenu(open) {
  $('more-menu').hidden = !open;
  $('more').setAttribute('aria-expanded', String(open));
}
$('more').addEventListener('click', (e) => {
  e.stopPropagation();
  showMenu($('more-menu').hidden);
  if (!$('more-menu').hidden) $('more-menu').querySelector('button:enabled')?.focus();
});
$('more-menu').addEventListener('click', () => showMenu(false));
document.addEventListener('click', (e) => { if (!$('more-menu').contains(e.target)) showMenu(false); });
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !$('more-menu').hidden) { showMenu(false); $('more').focus(); }
});

$('rename').addEventListener('click', async () => {
  const conv = state.conv;
  if (!conv) return;
  const title = await ask({ title: 'Rename conversation', value: conv.title || plain(conv.first_message), ok: 'Rename' });
  if (title === null) return;
  try {
    const res = await api('PATCH', `/api/conversations/${conv.id}`, { title: title.trim() || null });
    const c = await res.json();
    // Only if it is still the one open: the user may have switched meanwhile.
    if (state.conv && state.conv.id === conv.id) { state.conv = c.conversation || c; setTitle(); }
    loadList().catch(() => {});
  } catch (e) { flash(`Could not rename: ${e.message}`); }
});

// What turns changed in the project (changes.js), loaded when the first finished turn asks.
let changesMod = null;
const changesModule = () => (changesMod = changesMod || import('./changes.js'));

$('changes-open').addEventListener('click', () => {
  const conv = state.conv;
  if (!conv) return;
  changesModule().then((m) => m.openChanges(`/api/conversations/${encodeURIComponent(conv.id)}/changes`, 'All changes'))
    .catch((e) => flash(`Could not open the changes: ${e.message}`));
});

$('export-open').addEventListener('click', () => {
  const conv = state.conv;
  if (!conv) return;
  import('./export.js').then((m) => m.openExport(conv, conv.title || plain(conv.first_message) || 'this conversation'))
    .catch((e) => flash(`Could not open the export: ${e.message}`));
});

// The project under the header's title: "Continue on the computer" (continue.js), the full path and the command.
$('chat-project').addEventListener('click', () => {
  const conv = state.conv;
  if (!conv) return;
  import('./continue.js').then((m) => m.openContinue(conv)).catch((e) => flash(`Could not open it: ${e.message}`));
});

$('delete').addEventListener('click', async () => {
  const conv = state.conv;
  if (!conv) return;
  const name = conv.title || plain(conv.first_message) || 'this conversation';
  const sure = await ask({
    title: `Delete “${name}”?`,
    text: 'Its history is removed and a running turn is stopped.',
    ok: 'Delete',
    danger: true,
  });
  if (!sure) return;
  try {
    await api('DELETE', `/api/conversations/${conv.id}`);
    const wasOpen = state.conv && state.conv.id === conv.id;
    if (wasOpen) state.conv = null;
    await loadList();
    if (!wasOpen) return;
    if (state.convs.length) await openConv(state.convs[0].id);
    else { clearChat(); showView('list'); }
  } catch (e) { flash(`Could not delete: ${e.message}`); }
});

// Asks in the page's own dialog. With `value` it shows a field and resolves to its text, else to true; null when
// cancelled (the button, Escape, or a tap outside).
function ask({ title, text = '', value = null, ok, danger = false }) {
  const d = $('ask');
  // Browsers without <dialog> (iOS before 15.4) get the native questions.
  if (typeof d.showModal !== 'function') {
    return Promise.resolve(value === null ? (confirm(`${title} ${text}`) || null) : prompt(title, value));
  }
  const input = $('ask-input');
  $('ask-title').textContent = title;
  $('ask-text').textContent = text;
  $('ask-text').hidden = !text;
  input.hidden = value === null;
  input.value = value ?? '';
  $('ask-ok').textContent = ok;
  $('ask-ok').className = danger ? 'danger' : 'primary';
  d.returnValue = '';
  d.showModal();
  // A destructive question starts on Cancel, so that a stray Enter does not confirm it.
  if (value !== null) input.select();
  else if (danger) $('ask-cancel').focus();
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      resolve(d.returnValue !== 'ok' ? null : value === null ? true : input.value);
    }, { once: true });
  });
}
// A tap on the backdrop cancels; a drag that began inside (selecting the field's text) does not.
let pressedOnBackdrop = false;
$('ask').addEventListener('pointerdown', (e) => { pressedOnBackdrop = e.target === $('ask'); });
$('ask').addEventListener('click', (e) => { if (e.target === $('ask') && pressedOnBackdrop) $('ask').close(); });

// A conversation's name: its title, else its first message as plain text (the header and the list show no
// markdown syntax).
function convName(c) {
  return (c && (c.title || plain(c.first_message))) || 'New conversation';
}

function setTitle() {
  $('chat-title').textContent = convName(state.conv);
  const project = state.conv && state.conv.project;
  // A draft with a project picked names it; "Continue on the computer" waits for the conversation.
  const draft = !state.conv && state.draftProject;
  $('chat-project').hidden = !project;
  $('chat-project-name').hidden = !project && !draft;
  $('chat-project-name').textContent = project ? `${projectName(project)} · on the computer ›`
    : draft ? `in ${projectName(draft)}` : '';
  $('chat-project-name').title = draft || '';
  $('chat-project').setAttribute('aria-label', `Continue on the computer (project ${projectName(project)})`);
  $('chat-project').title = project || '';
  markHeader();
}

// ---------- what Claude asks ----------

// requests.js, loaded at its first use: most visits have nothing waiting. Calls run in the order made.
let requests = null;
function cards(f) {
  requests = requests || import('./requests.js');
  requests.then(f).catch((e) => flash(`Could not show what Claude asks: ${e.message}`));
}

// The header: "waiting for you" while a request of this conversation waits (the cards on screen once known, else
// the list's count), and the mode button with the conversation's mode.
const MODE_NAMES = { plan: 'Plan', default: 'Ask', acceptEdits: 'Edits', auto: 'Auto', dontAsk: 'No asking',
  bypassPermissions: 'Bypass' };
function markHeader() {
  const c = state.conv;
  $('chat-waiting').hidden = !(c && (state.waitingHere ?? c.waiting));
  $('mode').hidden = !c || !c.created_at;
  const mode = c && (c.permission_mode || (state.modes && state.modes.default));
  $('mode').textContent = `${mode ? MODE_NAMES[mode] || mode : 'Mode'} ▾`;
  $('mode').title = `Permission mode: ${mode || "the server's"}; model: ${(c && c.model) || "the server's"}`;
}
$('mode').addEventListener('click', () => cards((m) => m.openModes()));

// The pending requests of the conversation just opened (a turn's replay gives them too; each shows once).
async function loadRequests(id, gen) {
  const { requests: all = [] } = await getJSON('/api/requests');
  if (gen !== state.gen) return;
  const mine = all.filter((r) => r.conversation_id === id);
  // Opened from a notification about a request (?r=): its card is brought into view, or we say it is gone.
  const wanted = state.focusRequest;
  state.focusRequest = null;
  if (wanted && !mine.some((r) => r.id === wanted)) flash('That request is no longer waiting: it was answered or ended.');
  if (mine.length) {
    cards((m) => {
      mine.forEach(m.showRequest);
      if (wanted) m.focusRequest(wanted);
    });
  } else if (!state.waitingHere) { state.waitingHere = 0; markHeader(); }
}

function clearChat() {
  state.gen++;
  resumeLive();
  state.live = null;
  state.chain = Promise.resolve();
  $('messages').replaceChildren();
  state.waitingHere = null;
  if (requests) cards((m) => m.clearRequests());
  setStatus('');
  setTitle();
  presence();
}

// `refresh`: the same conversation again (its copy was stale), without leaving the list if that is on screen.
async function openConv(id, refresh = false) {
  clearChat();
  // Set at once, so that a message sent while the history loads goes to this conversation.
  state.conv = state.convs.find((c) => c.id === id) || { id };
  setTitle();
  if (!refresh) showView('chat');
  presence();
  const gen = state.gen;
  let data;
  let res;
  try {
    res = await api('GET', `/api/conversations/${encodeURIComponent(id)}`);
    data = await res.json();
  } catch (e) {
    if (gen !== state.gen || e.status === 401) throw e;
    if (e instanceof NetError) {
      // Offline, and no copy of it was saved: its unsent messages still show, with their Cancel.
      savedCopy(null);
      $('messages').append(errorCard('Offline', 'No copy of this conversation was saved on this device.'));
      showPending(id);
      return;
    }
    savedCopy(undefined);
    $('messages').append(errorCard('Could not load this conversation', e.message, () => openConv(id)));
    return;
  }
  if (gen !== state.gen) return;
  const cached = !!res.headers.get('X-RA-Cached');
  savedCopy(cached ? res : undefined);
  // The conversation's fields come alongside messages and has_more.
  const { messages: _m, has_more: _h, ...conv } = data;
  state.conv = data.conversation || conv;
  setTitle();
  renderList();
  const box = $('messages');
  if (data.has_more) box.append(olderButton(data.messages));
  const live = renderTranscript(box, data.messages);
  // Messages the server accepted while this answer was on its way: the ones it is too old to have.
  const shown = new Set(data.messages.map((m) => m.turn_id));
  for (const a of state.accepted.filter((x) => x.conv === id && !shown.has(x.id))) {
    box.append(userBubble(a.text));
    const view = new TurnView(a.id, a.text);
    box.append(view.el);
    live.push({ id: a.id, view });
  }
  state.accepted = state.accepted.filter((x) => x.conv !== id);
  showPending(id);
  for (const t of live) {
    if (cached) t.view.unfinished();
    else follow(t.id, t.view);
  }
  // What Claude asks and waits for, pinned below (a turn's replay gives it too).
  if (!cached) loadRequests(id, gen).catch(() => {});
  // Adopted from the computer: the session file's history, above our own turns.
  if (data.adopted && !cached) computer((m) => m.showHistory(box, id, gen));
}

function showPending(id) {
  const box = $('messages');
  for (const p of state.pending) if (p.conv === id) box.append(p.bubble);
  box.scrollTop = box.scrollHeight;
}

// Offline, the open conversation is the service worker's saved copy (`res`; null: there is none): the banner says
// from when, and what needs the server is off until it is back (reconnected() loads the conversation again).
// `undefined`: the server's own answer.
const OFFLINE_TEXT = $('offline').textContent;
function savedCopy(res) {
  state.stale = res !== undefined;
  const at = res && res.headers.get('X-RA-Saved');
  const when = at && new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  $('offline').textContent = !state.stale ? OFFLINE_TEXT
    : `Offline — ${res === null ? 'no saved copy' : `saved copy${when ? ` from ${when}` : ''}`}; waiting for the server…`;
  $('rename').disabled = state.stale;
  $('delete').disabled = state.stale;
  $('export-open').disabled = state.stale;
}

// "Load earlier" pages the transcript back by turns.
function olderButton(messages) {
  const b = el('button', 'older', 'Load earlier messages');
  b.type = 'button';
  b.addEventListener('click', async () => {
    const first = messages.find((m) => m.turn_id);
    const gen = state.gen;
    const data = await getJSON(`/api/conversations/${state.conv.id}?before=${first.turn_id}`);
    if (gen !== state.gen) return;
    const frag = document.createDocumentFragment();
    if (data.has_more) frag.append(olderButton(data.messages));
    renderTranscript(frag, data.messages);
    const box = $('messages');
    const below = box.scrollHeight - box.scrollTop;
    b.replaceWith(frag);
    box.scrollTop = box.scrollHeight - below; // keep what the reader looked at in place
  });
  return b;
}

// ---------- phone layout ----------

// The visual viewport shrinks when the on-screen keyboard opens (iOS does not resize the layout): size the
// app to it so the composer stays above the keyboard.
if (window.visualViewport) {
  const fit = () => {
    document.documentElement.style.setProperty('--vvh', `${visualViewport.height}px`);
    if (document.activeElement === $('input')) window.scrollTo(0, 0);
  };
  visualViewport.addEventListener('resize', fit);
  fit();
}

// The keyboard opening (or the composer growing) shrinks the transcript from below: one that showed its newest
// messages keeps showing them. Whether it did is known from its last scroll, since a shrink alone does not scroll.
{
  const box = $('messages');
  let pinned = true;
  box.addEventListener('scroll', () => { pinned = box.scrollHeight - box.scrollTop - box.clientHeight < 80; });
  new ResizeObserver(() => { if (pinned) box.scrollTop = box.scrollHeight; }).observe(box);
}

// ---------- presence ----------

// While a conversation is on screen and the page visible, the server hears so at once and every 30 s, and holds
// back notifications about it (docs/api.md, POST /api/presence); hidden or left, it hears null. The service worker
// hears it too, and shows nothing about the conversation a focused window shows.
let presentIn = null;
let presenceTimer = null;
function presence() {
  const onScreen = document.visibilityState === 'visible' && !$('shell').hidden
    && (!document.body.classList.contains('show-list') || matchMedia('(min-width: 800px)').matches);
  const id = (onScreen && state.conv && state.conv.id) || null;
  if (id === presentIn) return;
  presentIn = id;
  clearInterval(presenceTimer);
  presenceTimer = id ? setInterval(() => tellPresence(id), 30000) : null;
  tellPresence(id);
}
function tellPresence(id) {
  if (navigator.serviceWorker && navigator.serviceWorker.controller) {
    navigator.serviceWorker.controller.postMessage({ present: id });
  }
  // Best effort, and kept alive through the page going away; a failure is the next call's to mend.
  fetch('/api/presence', {
    method: 'POST', credentials: 'same-origin', keepalive: true,
    headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'remote-agent' },
    body: JSON.stringify({ conversation_id: id }),
  }).catch(() => {});
}
window.addEventListener('pagehide', () => { if (presentIn) { presentIn = null; clearInterval(presenceTimer); tellPresence(null); } });
window.addEventListener('pageshow', (e) => { if (e.persisted) presence(); });

// ---------- start ----------

// Opened from a notification: ?c=<conversation id> opens it, and &r=<request id> brings that request's card into
// view. The address bar goes back to "/", so that a reload opens the most recent conversation as usual.
const opened = (() => {
  const q = new URLSearchParams(location.search);
  const ok = (v) => (v && /^[A-Za-z0-9_-]{1,64}$/.test(v) ? v : null);
  const found = { conv: ok(q.get('c')), request: ok(q.get('r')) };
  if (location.search) history.replaceState(history.state, '', '/');
  return found;
})();

async function start() {
  // Asked first, so that a signed-out browser goes to the login screen without a 401. Offline, the service
  // worker's copy of the list may still show.
  let session = null;
  try { session = await (await api('GET', '/api/session')).json(); } catch (e) { if (!(e instanceof NetError)) throw e; }
  if (session && !session.signed_in) {
    showLogin();
    const err = new Error('signed out');
    err.status = 401;
    throw err;
  }
  await loadList(); // a 401 here shows the login screen
  $('login').hidden = true;
  $('shell').hidden = false;
  loadProjects().catch(() => {});
  // The most recent conversation opens by default, or the one with a message not sent yet (typed offline before a
  // reload: it shows there, with its Cancel); with none yet, the first send starts one.
  const waiting = state.pending.length && state.convs.find((c) => c.id === state.pending[0].conv);
  const asked = opened.conv && state.convs.find((c) => c.id === opened.conv);
  if (asked) state.focusRequest = opened.request;
  opened.conv = null;
  if (state.convs.length) await openConv((asked || waiting || state.convs[0]).id);
  else { clearChat(); showView('chat'); }
  flushPending();
}

// The allowed projects (the first is the default); a picker only when there is a choice.
async function loadProjects() {
  const { projects = [], project_roots: roots = [], permission_modes: modes = null } = await (await api('GET', '/api/status')).json();
  state.roots = roots; // with roots, "+" opens the project picker
  state.modes = modes; // {allowed, default}: the mode control's choices
  markHeader();
  const select = $('project');
  select.replaceChildren(...projects.map((p) => {
    const option = el('option', null, p.split('/').filter(Boolean).pop() || p);
    option.value = p;
    option.title = p;
    return option;
  }));
  $('project-pick').hidden = projects.length < 2;
}

// What the modules below ask of this one (a module imports only from those below it).
onApiEvents({ signedOut: showLogin, reconnected });
Object.assign(above, {
  submit,
  newConv,
  loadList,
  markHeader,
  request: (d) => cards((m) => m.showRequest(d)),
  requestEnded: (d) => cards((m) => m.endRequest(d)),
  turnEnded: (id) => { if (requests) cards((m) => m.turnEnded(id)); },
  ask,
  changes: (view) => { changesModule().then((m) => m.strip(view)).catch(() => {}); },
});

if ('serviceWorker' in navigator) navigator.serviceWorker.register('/sw.js').catch(() => {});
loadPending();
boot();

// Opened offline (the service worker gave the shell): wait for the server instead of asking to sign in.
function boot() {
  start().catch((e) => {
    if (e.status === 401) return; // the login screen is up
    if (e instanceof NetError) { state.booting = true; return; }
    if (e instanceof HttpError) {
      // Signed in, but the server cannot read its data ("database damaged: …"): say so, not the login screen.
      $('login').hidden = true;
      $('shell').hidden = false;
      showView('chat');
      $('messages').replaceChildren(errorCard('Could not load your conversations', e.message, () => boot()));
      return;
    }
    showLogin();
    $('login-error').textContent = e.message;
  });
}
