// The remote-agent web app: sign-in, conversations, and a chat that follows a turn's event stream.
// No framework and no innerHTML: model and tool text only ever reach the DOM through text nodes.
'use strict';

const $ = (id) => document.getElementById(id);
const STALL_MS = 20000; // no bytes on the stream for this long while a turn runs → switch to the long poll

const state = {
  convs: [],
  conv: null, // the open conversation
  gen: 0, // bumped when the open conversation changes, so followers of the old one stop
  chain: Promise.resolve(), // turns of the open conversation are followed one after another
  live: null, // the turn being followed: {id, view, last, ctrl, done}
  pending: [], // sends not yet accepted by the server (offline): {conv, text, client_id, bubble}
  offline: false,
};

// ---------- small helpers ----------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// crypto.randomUUID exists only in secure contexts; a plain-HTTP LAN address is not one.
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

const money = (c) => (c == null ? '' : `$${Number(c).toFixed(c < 1 ? 4 : 2)}`);

// ---------- the API ----------

class HttpError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}
class NetError extends Error {}

// Every call sends X-Requested-With so that a 401 has no browser password dialog.
async function api(method, path, body, signal) {
  const opts = { method, headers: { 'X-Requested-With': 'remote-agent' }, credentials: 'same-origin', signal };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    setOffline(true);
    throw new NetError(String(e));
  }
  // The service worker answered from its copy of the last list or transcript: show it, but we are offline.
  if (res.headers.get('X-RA-Cached')) {
    setOffline(true);
    return res;
  }
  // Behind the tunnel, a laptop that sleeps or a server that restarts shows up as the edge's own error page
  // (502, 530, …), not as a failed fetch: that is "unreachable" too, not an answer. Our own errors are JSON.
  if (res.status >= 502 && !(res.headers.get('Content-Type') || '').includes('application/json')) {
    setOffline(true);
    throw new NetError(`HTTP ${res.status} from the way to the server`);
  }
  setOffline(false);
  if (res.status === 401 && path !== '/api/login') showLogin();
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
    throw new HttpError(res.status, msg);
  }
  return res.status === 204 ? null : res;
}
const getJSON = async (path) => (await api('GET', path)).json();

// ---------- online / offline ----------

let probe = null;
function setOffline(off) {
  if (off === state.offline) return;
  state.offline = off;
  $('offline').hidden = !off;
  if (off) {
    // Probe until the server answers again; then flush what waited.
    probe = setInterval(async () => {
      try {
        const r = await fetch('/health', { cache: 'no-store' });
        if (r.ok) setOffline(false);
      } catch { /* still away */ }
    }, 2000);
  } else {
    clearInterval(probe);
    reconnected();
  }
}

function reconnected() {
  if (state.booting) { state.booting = false; boot(); return; }
  if (state.stale) {
    // The open transcript came from the service worker's copy: fetch it again.
    state.stale = false;
    if (state.conv) openConv(state.conv.id, true).catch(() => {});
  }
  flushPending();
  resumeLive();
  if (!$('shell').hidden) loadList().catch(() => {});
}

// A stream that outlived a network change or a sleep in the background is likely dead without knowing it:
// drop it and resume from the last event id (the server gives exactly the events after it).
function resumeLive() {
  if (state.live && !state.live.done && state.live.ctrl) state.live.ctrl.abort();
}

window.addEventListener('offline', () => { setOffline(true); resumeLive(); });
window.addEventListener('online', () => setOffline(false));
document.addEventListener('visibilitychange', () => {
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
      : e.status === 429 ? 'Too many attempts; wait a little and try again.' : `Could not sign in: ${e.message}`;
  } finally {
    $('login-submit').disabled = false;
  }
});

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

function renderList() {
  const ul = $('conv-list');
  ul.replaceChildren();
  if (!state.convs.length) ul.append(el('li', 'empty', 'No conversations yet.'));
  for (const c of state.convs) {
    const li = el('li');
    const b = el('button', 'conv');
    b.type = 'button';
    if (state.conv && c.id === state.conv.id) b.setAttribute('aria-current', 'true');
    const top = el('span', 'conv-top');
    top.append(el('span', 'conv-title', convName(c)));
    if (c.active_turn_id) top.append(el('span', 'badge', 'running'));
    b.append(top);
    // "messages" here, "steps" under a reply (the CLI's turns): two words for two things.
    const count = `${c.turn_count} message${c.turn_count === 1 ? '' : 's'}`;
    b.append(el('span', 'conv-meta', [ago(c.last_message_at || c.updated_at), count, money(c.total_cost_usd)]
      .filter(Boolean).join(' · ')));
    b.addEventListener('click', () => openConv(c.id));
    li.append(b);
    ul.append(li);
  }
}

function showView(which) {
  document.body.classList.toggle('show-list', which === 'list');
}
$('back').addEventListener('click', () => { showView('list'); loadList().catch(() => {}); });

// "+" opens an empty draft; the conversation is created by its first message, so unused ones never pile up.
$('new-conv').addEventListener('click', () => {
  clearChat();
  state.conv = null;
  setTitle();
  renderList();
  showView('chat');
  $('input').focus();
});

// A new conversation opens at once from the POST's answer: there is no history to fetch.
async function newConv() {
  try {
    // With more than one allowed project, the picker says where new conversations run.
    const body = $('project-pick').hidden ? {} : { project: $('project').value };
    const c = await (await api('POST', '/api/conversations', body)).json();
    clearChat();
    state.conv = c;
    setTitle();
    showView('chat');
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

// The first non-empty line of markdown, without its syntax.
function plain(md) {
  const line = String(md || '').split('\n').find((l) => l.trim() && !/^\s*(`{3,}|~{3,})/.test(l)) || '';
  const span = el('span');
  inline(span, line.replace(/^\s*(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)/, '').trim());
  return span.textContent;
}

function setTitle() {
  $('chat-title').textContent = convName(state.conv);
}

function clearChat() {
  state.gen++;
  resumeLive();
  state.live = null;
  state.chain = Promise.resolve();
  $('messages').replaceChildren();
  setStatus('');
  setTitle();
}

// `refresh`: the same conversation again (its copy was stale), without leaving the list if that is on screen.
async function openConv(id, refresh = false) {
  clearChat();
  // Set at once, so that a message sent while the history loads goes to this conversation.
  state.conv = state.convs.find((c) => c.id === id) || { id };
  setTitle();
  if (!refresh) showView('chat');
  const gen = state.gen;
  let data;
  let cached = false;
  try {
    const res = await api('GET', `/api/conversations/${encodeURIComponent(id)}`);
    cached = !!res.headers.get('X-RA-Cached');
    data = await res.json();
  } catch (e) {
    if (gen !== state.gen || e.status === 401 || e instanceof NetError) throw e;
    $('messages').append(errorCard('Could not load this conversation', e.message, () => openConv(id)));
    return;
  }
  if (gen !== state.gen) return;
  state.stale = cached;
  // The conversation's fields come alongside messages and has_more.
  const { messages: _m, has_more: _h, ...conv } = data;
  state.conv = data.conversation || conv;
  setTitle();
  renderList();
  const box = $('messages');
  if (data.has_more) box.append(olderButton(data.messages));
  const live = renderTranscript(box, data.messages);
  for (const p of state.pending) if (p.conv === id) box.append(p.bubble);
  box.scrollTop = box.scrollHeight;
  for (const t of live) follow(t.id, t.view);
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

// Renders finished turns from the stored transcript. A turn without a `result` has not ended: it gets only its
// user bubble here and is followed on its event stream from the start (a replay is the same stream), so no part
// of it is drawn twice. Returns those unfinished turns.
function renderTranscript(box, messages) {
  // Every turn has a result entry; a turn still queued or running has no finished_at, and is followed live.
  const ended = new Set(messages.filter((m) => m.type === 'result' && m.finished_at).map((m) => m.turn_id));
  const views = new Map();
  const live = [];
  for (const m of messages) {
    if (m.type === 'user') {
      box.append(userBubble(m.text));
      const view = new TurnView(m.turn_id, m.text);
      box.append(view.el);
      views.set(m.turn_id, view);
      if (!ended.has(m.turn_id)) live.push({ id: m.turn_id, view });
      continue;
    }
    const view = views.get(m.turn_id);
    if (!view || !ended.has(m.turn_id)) continue;
    if (m.type === 'assistant') view.on('message', { text: m.text });
    else if (m.type === 'thinking') view.on('thinking', { text: m.text, complete: true });
    else if (m.type === 'tool_use') view.on('tool_use', m);
    else if (m.type === 'tool_result') view.on('tool_result', m);
    else if (m.type === 'result') {
      view.meta(m);
      // A reply cut short by a server stop may come on the result alone.
      if (m.status === 'interrupted' && m.response && !view.lastText) view.on('message', { text: m.response });
      if (m.error) view.on('error', { error: m.error, kind: m.error_kind });
      view.on('done', { status: m.status });
    }
  }
  return live;
}

// ---------- one turn's view ----------

const STATUS_TEXT = {
  queued: 'Queued…', running: 'Running…', succeeded: 'Done', failed: 'Failed', cancelled: 'Cancelled',
  timed_out: 'Timed out', interrupted: 'Interrupted (the server stopped)', cancelling: 'Stopping…',
};

class TurnView {
  constructor(id, prompt) {
    this.id = id;
    this.prompt = prompt; // what Retry sends again
    this.el = el('div', 'turn');
    this.el.dataset.turn = id;
    // While the turn waits (behind another, or for a free slot) it says so and can be withdrawn.
    this.queueEl = el('div', 'turn-queue');
    const withdraw = el('button', 'text', 'Cancel');
    withdraw.type = 'button';
    withdraw.setAttribute('aria-label', 'Cancel the queued message');
    withdraw.addEventListener('click', async () => {
      withdraw.disabled = true;
      try {
        await api('POST', `/api/turns/${id}/cancel`);
        withdraw.textContent = 'Cancelling…';
      } catch (e) { withdraw.disabled = false; if (e.status !== 409) flash(e.message); }
    });
    this.queueEl.append(el('span', null, 'Queued — runs after the message before it'), withdraw);
    this.el.append(this.queueEl);
    this.textEl = null; // the assistant bubble of the text block now streaming
    this.buf = '';
    this.thinkEl = null;
    this.tools = new Map();
    this.status = 'queued';
    this.foot = el('div', 'turn-foot');
    this.el.append(this.foot);
    this.paint = 0;
  }

  add(node) { this.el.insertBefore(node, this.foot); }

  // Keeps the newest output in sight, unless the reader has scrolled up to read something older.
  on(kind, d) {
    const box = $('messages');
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    this.apply(kind, d);
    if (stick) box.scrollTop = box.scrollHeight;
  }

  apply(kind, d) {
    switch (kind) {
      case 'status': this.setStatus(d.status); break;
      case 'retry':
        this.setStatus('running', `Retrying (${d.attempt}/${d.max_retries})…${d.error ? ` ${d.error}` : ''}`);
        break;
      case 'thinking': {
        if (!this.thinkEl) {
          this.thinkEl = el('details', 'thinking');
          this.thinkEl.append(el('summary', null, 'Thinking'), el('div', 'thinking-text'));
          this.add(this.thinkEl);
        }
        const t = this.thinkEl.lastChild;
        t.textContent = d.complete ? d.text : t.textContent + d.text;
        if (d.complete) this.thinkEl = null;
        break;
      }
      case 'text_delta':
        if (!this.textEl) { this.textEl = el('div', 'bubble assistant streaming'); this.add(this.textEl); this.buf = ''; }
        this.buf += d.text;
        // Re-render at most once a frame: a fast stream sends many small deltas.
        if (!this.paint) this.paint = requestAnimationFrame(() => { this.paint = 0; this.renderText(); });
        break;
      case 'message':
        if (!this.textEl) { this.textEl = el('div', 'bubble assistant'); this.add(this.textEl); }
        this.buf = d.text; // the complete block replaces what the deltas built
        this.lastText = d.text;
        this.lastBubble = this.textEl;
        this.renderText();
        this.textEl.classList.remove('streaming');
        this.textEl = null;
        break;
      case 'tool_use': this.textEl = null; this.add(this.toolCard(d)); break;
      case 'tool_result': {
        const card = this.tools.get(d.tool_use_id);
        if (!card) break;
        const out = el('pre', 'tool-out', toolText(d.content) || '(no output)');
        card.append(out);
        // The tool the user's Stop interrupted reports an error: that is a stop, not a failure.
        const stopped = d.is_error && this.stopping;
        card.classList.toggle('error', !!d.is_error && !stopped);
        card.querySelector('.tool-state').textContent = stopped ? 'stopped' : d.is_error ? 'error' : 'done';
        break;
      }
      case 'result': this.meta({ cost: d.cost, num_turns: d.num_turns }); break;
      case 'error': {
        // A stop the user asked for is said by the footer ("Cancelled").
        if (/^cancel+ed$/i.test(norm(d.error))) break;
        // The CLI puts an API error (and "Not logged in") in the reply too: that bubble is the error, not a reply.
        const said = norm(this.lastText);
        if (this.lastBubble && said && (norm(d.error) === said || d.kind)) {
          this.lastBubble.remove();
          this.lastBubble = null;
        }
        const card = d.kind === 'not_logged_in'
          ? errorCard('Claude Code is not signed in on the computer',
            'On that computer, run claude in a terminal and type /login (or set ANTHROPIC_API_KEY where '
            + 'remote-agent runs), then tap Retry.', this.retry())
          : errorCard(null, d.error, this.retry());
        card.classList.add('turn-error');
        this.add(card);
        break;
      }
      case 'done': this.setStatus(d.status); break;
    }
  }

  renderText() {
    if (!this.textEl) return;
    const box = $('messages');
    const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    this.textEl.replaceChildren(markdown(this.buf));
    if (stick) box.scrollTop = box.scrollHeight;
  }

  toolCard(d) {
    const card = el('details', 'tool');
    const sum = el('summary');
    const input = d.input || {};
    const arg = input.command || input.file_path || input.path || input.pattern || input.url || input.query
      || input.description || '';
    sum.append(el('span', 'tool-name', d.name), el('code', 'tool-arg', String(arg)), el('span', 'tool-state', '…'));
    card.append(sum, el('pre', 'tool-in', JSON.stringify(input, null, 2)));
    this.tools.set(d.id, card);
    return card;
  }

  // Sends the turn's message again, into the conversation it belongs to (if it is still the open one).
  retry() {
    if (!this.prompt) return null;
    return () => {
      const conv = this.el.isConnected && state.conv;
      if (conv) submit(this.prompt, conv.id);
    };
  }

  setStatus(s, text) {
    this.status = s;
    this.el.dataset.status = s;
    this.queueEl.hidden = s !== 'queued';
    if (state.live && state.live.view === this) setStatus(text || STATUS_TEXT[s] || s, s);
    if (['succeeded', 'failed', 'cancelled', 'timed_out', 'interrupted'].includes(s)) {
      // A tool still waiting for its result when the turn ended will not get one.
      for (const card of this.tools.values()) {
        const st = card.querySelector('.tool-state');
        if (st.textContent === '…') st.textContent = s === 'succeeded' ? 'done' : 'stopped';
      }
      // Replayed, a cancelled turn's last tool failed because of the stop: it says "stopped".
      const last = [...this.tools.values()].pop();
      if (s === 'cancelled' && last && last.classList.contains('error')) {
        last.classList.remove('error');
        last.querySelector('.tool-state').textContent = 'stopped';
      }
      // The reply so far of a turn the server stopped is kept, and marked as cut short.
      const cut = this.textEl || this.lastBubble;
      if (s === 'interrupted' && cut && !cut.classList.contains('interrupted')) {
        if (this.textEl) { this.renderText(); this.textEl.classList.remove('streaming'); this.textEl = null; }
        cut.classList.add('interrupted');
        cut.append(el('div', 'cut', 'interrupted'));
      }
      this.foot.dataset.status = s;
      this.footStatus = STATUS_TEXT[s];
      this.drawFoot();
    }
  }

  meta(m) {
    this.m = { ...this.m, ...m };
    this.drawFoot();
  }

  drawFoot() {
    const m = this.m || {};
    const parts = [this.footStatus, money(m.cost),
      m.num_turns != null ? `${m.num_turns} step${m.num_turns === 1 ? '' : 's'}` : '',
      m.duration_ms != null ? `${(m.duration_ms / 1000).toFixed(1)} s` : ''];
    this.foot.textContent = parts.filter(Boolean).join(' · ');
  }
}

// Whitespace-insensitive text, for comparing what was said.
function norm(t) { return String(t ?? '').replace(/\s+/g, ' ').trim(); }

// A tool_result's content is a string or a list of content blocks.
function toolText(c) {
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((b) => (b && b.type === 'text' ? b.text : JSON.stringify(b))).join('\n');
  return c == null ? '' : JSON.stringify(c, null, 2);
}

function userBubble(text) {
  const b = el('div', 'bubble user');
  b.textContent = text;
  return b;
}

// ---------- following a turn's events ----------

function setStatus(text, kind) {
  $('status').textContent = text;
  $('status').dataset.kind = kind || '';
  const running = kind === 'queued' || kind === 'running';
  $('stop').hidden = !running;
}

// Follows the turns of the open conversation one after another (they run in order on the server too).
function follow(id, view) {
  const gen = state.gen;
  state.chain = state.chain.then(() => (gen === state.gen ? followTurn(id, view, gen) : null)).catch(() => {});
}

async function followTurn(id, view, gen) {
  const t = { id, view, last: 0, ctrl: null, done: false, poll: false };
  state.live = t;
  setStatus(STATUS_TEXT[view.status], view.status);
  let backoff = 500;
  while (!t.done && gen === state.gen) {
    try {
      if (t.poll) await longPoll(t);
      else await stream(t);
      backoff = 500;
    } catch (e) {
      if (e.status === 401 || e.status === 404) break;
      if (e.name !== 'AbortError') {
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
      }
      while (state.offline && gen === state.gen) await sleep(500);
    }
  }
  if (gen !== state.gen) return;
  state.live = null;
  setStatus(''); // the turn's own footer keeps its outcome
  if (t.done) {
    try { view.meta(await getJSON(`/api/turns/${id}`)); } catch { /* meta stays from the result event */ }
    loadList().catch(() => {});
  }
}

function handle(t, ev) {
  if (ev.event === 'keepalive') return;
  const id = Number(ev.id);
  if (id && id <= t.last) return; // already shown: never apply an event twice
  if (id) t.last = id;
  let data = ev.data;
  if (typeof data === 'string') { try { data = JSON.parse(data); } catch { data = {}; } }
  t.view.on(ev.event, data || {});
  if (ev.event === 'done') t.done = true;
}

// The event stream, read with fetch + POST (some proxies hold back GET streams) and parsed as SSE frames.
async function stream(t) {
  const ctrl = new AbortController();
  t.ctrl = ctrl;
  let timer;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { t.poll = true; ctrl.abort(); }, STALL_MS);
  };
  watch();
  try {
    const res = await api('POST', `/api/turns/${t.id}/events?after=${t.last}`, undefined, ctrl.signal);
    if (!res) { t.done = true; return; } // 204: the stream is over (we saw done)
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      watch();
      buf += value;
      let i;
      while ((i = buf.search(/\r?\n\r?\n/)) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i).replace(/^\r?\n\r?\n/, '');
        const ev = { id: null, event: 'message', data: '' };
        for (const line of frame.split(/\r?\n/)) {
          const c = line.indexOf(':');
          const k = c < 0 ? line : line.slice(0, c);
          const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (k === 'id') ev.id = v;
          else if (k === 'event') ev.event = v;
          else if (k === 'data') ev.data += (ev.data ? '\n' : '') + v;
        }
        handle(t, ev);
      }
    }
  } finally {
    clearTimeout(timer);
    t.ctrl = null;
  }
}

// The fallback where a path buffers the stream: the same events, one answer at a time.
async function longPoll(t) {
  const ctrl = new AbortController();
  t.ctrl = ctrl;
  try {
    const res = await api('GET', `/api/turns/${t.id}/events.json?after=${t.last}&wait=25`, undefined, ctrl.signal);
    const body = await res.json();
    for (const ev of body.events) handle(t, ev);
    if (body.done) t.done = true;
  } finally {
    t.ctrl = null;
  }
}

$('stop').addEventListener('click', async () => {
  const t = state.live;
  if (!t) return;
  t.view.stopping = true;
  setStatus(STATUS_TEXT.cancelling, 'running');
  try { await api('POST', `/api/turns/${t.id}/cancel`); } catch (e) { if (e.status !== 409) flash(e.message); }
});

// ---------- sending ----------

const input = $('input');

function grow() {
  input.style.height = 'auto'; // CSSOM writes are allowed by the CSP; style attributes in markup are not
  input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}
input.addEventListener('input', grow);

// Enter sends where there is a real keyboard and a mouse; on a phone Enter is a new line and the button sends.
input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && matchMedia('(pointer: fine)').matches) {
    ev.preventDefault();
    $('composer').requestSubmit();
  }
});

$('composer').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  if (!state.conv) {
    try { await newConv(); } catch { return; }
  }
  input.value = '';
  grow();
  await submit(text, state.conv.id);
});

// Sends a message of the open conversation (typed, or again by Retry).
async function submit(text, conv) {
  // One client_id per message, kept across retries, makes a resend after a lost answer run Claude only once.
  const p = pendingItem({ conv, text, client_id: uuid() });
  $('messages').append(p.bubble);
  $('messages').scrollTop = $('messages').scrollHeight;
  state.pending.push(p);
  savePending();
  await send(p);
}

// A message not yet accepted by the server: its bubble says so and has a Cancel that withdraws it.
function pendingItem(p) {
  p.bubble = userBubble(p.text);
  p.bubble.classList.add('pending');
  p.note = el('div', 'pending-note');
  p.note.hidden = true;
  const withdraw = el('button', 'text', 'Cancel');
  withdraw.type = 'button';
  withdraw.setAttribute('aria-label', 'Cancel the unsent message');
  withdraw.addEventListener('click', () => {
    p.withdrawn = true;
    state.pending = state.pending.filter((x) => x !== p);
    savePending();
    p.bubble.remove();
  });
  p.note.append(el('span', null, 'Not sent yet — will send when back online'), withdraw);
  p.bubble.append(p.note);
  return p;
}

async function send(p) {
  if (p.sending) return;
  p.sending = true;
  try {
    const res = await api('POST', `/api/conversations/${encodeURIComponent(p.conv)}/messages`,
      { message: p.text, client_id: p.client_id });
    const { turn_id: id } = await res.json();
    if (p.withdrawn) {
      // Cancelled while the send was on its way: the server has it now, so withdraw it there.
      api('POST', `/api/turns/${id}/cancel`).catch(() => {});
      return;
    }
    state.pending = state.pending.filter((x) => x !== p);
    savePending();
    p.bubble.classList.remove('pending');
    p.note.remove();
    if (state.conv && state.conv.id === p.conv && p.bubble.isConnected) {
      const view = new TurnView(id, p.text);
      const box = $('messages');
      const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      p.bubble.after(view.el);
      if (stick) box.scrollTop = box.scrollHeight;
      follow(id, view);
    }
    loadList().catch(() => {});
  } catch (e) {
    if (e instanceof NetError) {
      const box = $('messages');
      const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      p.note.hidden = false;
      if (stick) box.scrollTop = box.scrollHeight;
    } else {
      // The server refused it (a full disk, a damaged database, …): the message stays where it was, with the
      // reason and a Retry that sends it again.
      state.pending = state.pending.filter((x) => x !== p);
      savePending();
      p.bubble.classList.remove('pending');
      p.note.remove();
      const card = errorCard('Not sent', e.message, () => {
        card.remove();
        p.bubble.remove();
        if (state.conv && state.conv.id === p.conv) submit(p.text, p.conv);
      });
      if (p.bubble.isConnected) p.bubble.after(card);
    }
  } finally {
    p.sending = false;
  }
}

function flushPending() {
  for (const p of [...state.pending]) if (!p.withdrawn) send(p);
}

// Unsent messages survive a reload or a closed tab (they are the user's own words, not history).
function savePending() {
  localStorage.setItem('ra.pending', JSON.stringify(state.pending.map(({ conv, text, client_id: c }) =>
    ({ conv, text, client_id: c }))));
}
function loadPending() {
  try {
    state.pending = (JSON.parse(localStorage.getItem('ra.pending')) || []).map((p) => {
      const item = pendingItem({ conv: p.conv, text: p.text, client_id: p.client_id });
      item.note.hidden = false;
      return item;
    });
  } catch { state.pending = []; }
}

function flash(msg) {
  setStatus(msg, 'error');
}

// An error is a card of its own, never a reply: what went wrong in the server's words ("disk full", "database
// damaged: run `remote-agent doctor`", …) and, when it can help, a Retry.
function errorCard(title, text, retry) {
  const card = el('div', 'error-card');
  card.setAttribute('role', 'alert');
  if (title) card.append(el('strong', null, title));
  card.append(el('p', null, text));
  if (retry) {
    const b = el('button', null, 'Retry');
    b.type = 'button';
    b.addEventListener('click', () => { b.disabled = true; retry(); });
    card.append(b);
  }
  return card;
}

// An error of the open chat that belongs to no turn.
function showError(title, text, retry) {
  const box = $('messages');
  box.append(errorCard(title, text, retry));
  box.scrollTop = box.scrollHeight;
}

// ---------- Markdown, rendered to DOM nodes (never HTML strings) ----------

function markdown(src) {
  const root = document.createDocumentFragment();
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let para = [];
  const flush = () => {
    if (!para.length) return;
    const p = el('p');
    para.forEach((l, k) => { if (k) p.append(el('br')); inline(p, l); });
    root.append(p);
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = line.match(/^\s*(`{3,}|~{3,})\s*([\w+.#-]*)/))) {
      flush();
      const fence = m[1];
      const code = [];
      for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++) code.push(lines[i]);
      i++; // past the closing fence (or the end while it still streams)
      root.append(codeBlock(code.join('\n'), m[2]));
      continue;
    }
    if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
      flush();
      const h = el(`h${Math.min(m[1].length + 2, 6)}`, 'md-h');
      inline(h, m[2].replace(/\s#+\s*$/, ''));
      root.append(h);
      i++;
      continue;
    }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); root.append(el('hr')); i++; continue; }
    if (line.includes('|') && i + 1 < lines.length && /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/.test(lines[i + 1])) {
      flush();
      const rows = [line];
      for (i += 2; i < lines.length && lines[i].includes('|') && lines[i].trim(); i++) rows.push(lines[i]);
      root.append(table(rows));
      continue;
    }
    if (/^\s*>/.test(line)) {
      flush();
      const q = [];
      for (; i < lines.length && /^\s*>/.test(lines[i]); i++) q.push(lines[i].replace(/^\s*>\s?/, ''));
      const bq = el('blockquote');
      bq.append(markdown(q.join('\n')));
      root.append(bq);
      continue;
    }
    if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
      flush();
      i = list(lines, i, root);
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    para.push(line);
    i++;
  }
  flush();
  return root;
}

// A list; deeper-indented items become a nested list.
function list(lines, i, parent) {
  const indent = lines[i].match(/^\s*/)[0].length;
  const ordered = /^\s*\d/.test(lines[i]);
  const ul = el(ordered ? 'ol' : 'ul');
  const start = lines[i].match(/^\s*(\d+)/);
  if (start && start[1] !== '1') ul.start = Number(start[1]);
  let li = null;
  while (i < lines.length) {
    const line = lines[i];
    const m = line.match(/^(\s*)([-*+]|\d+[.)])\s+(.*)$/);
    if (m && m[1].length > indent && li) { i = list(lines, i, li); continue; }
    // "1." after "-" items (or the reverse) starts a list of the other kind.
    if (m && m[1].length === indent && /\d/.test(m[2]) !== ordered) break;
    if (m && m[1].length === indent) {
      li = el('li');
      inline(li, m[3]);
      ul.append(li);
      i++;
      continue;
    }
    if (!m && li && line.trim() && /^\s+/.test(line)) { li.append(' '); inline(li, line.trim()); i++; continue; }
    break;
  }
  parent.append(ul);
  return i;
}

function cells(row) {
  return row.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
}

function table(rows) {
  const wrap = el('div', 'table-wrap');
  const t = el('table');
  const head = el('thead');
  const tr = el('tr');
  for (const c of cells(rows[0])) { const th = el('th'); inline(th, c); tr.append(th); }
  head.append(tr);
  const body = el('tbody');
  for (const r of rows.slice(1)) {
    const row = el('tr');
    for (const c of cells(r)) { const td = el('td'); inline(td, c); row.append(td); }
    body.append(row);
  }
  t.append(head, body);
  wrap.append(t);
  return wrap;
}

function codeBlock(code, lang) {
  const wrap = el('div', 'code');
  const bar = el('div', 'code-bar');
  bar.append(el('span', 'code-lang', lang || 'code'));
  const copy = el('button', 'copy', 'Copy');
  copy.type = 'button';
  copy.setAttribute('aria-label', 'Copy code');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(code);
    } catch {
      // No clipboard API outside secure contexts: select the text so the system copy menu can take it.
      getSelection().selectAllChildren(wrap.querySelector('code'));
      document.execCommand('copy');
    }
    copy.textContent = 'Copied';
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
  });
  bar.append(copy);
  const pre = el('pre');
  pre.append(el('code', null, code));
  wrap.append(bar, pre);
  return wrap;
}

// Inline spans: code, links (http/https only), bold, italic, strikethrough, bare URLs. Everything else is text.
const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\[([^\]]+)\]\(([^)\s]+)\)|\*\*(.+?)\*\*|__(.+?)__|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)|(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)|~~(.+?)~~|\bhttps?:\/\/[^\s<>]*[^\s<>.,:;"')\]]/;

function inline(parent, text) {
  while (text) {
    const m = text.match(INLINE);
    if (!m) { parent.append(text); return; }
    if (m.index) parent.append(text.slice(0, m.index));
    text = text.slice(m.index + m[0].length);
    if (m[1]) parent.append(el('code', null, m[2].replace(/^ (.*) $/, '$1')));
    else if (m[3]) parent.append(link(m[4], m[3]));
    else if (m[5] || m[6]) { const b = el('strong'); inline(b, m[5] || m[6]); parent.append(b); }
    else if (m[7] || m[8]) { const e = el('em'); inline(e, m[7] || m[8]); parent.append(e); }
    else if (m[9]) { const s = el('del'); inline(s, m[9]); parent.append(s); }
    else parent.append(link(m[0], m[0]));
  }
}

function link(href, label) {
  let url = null;
  try { url = new URL(href); } catch { /* not absolute */ }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    const s = el('span');
    inline(s, label);
    return s; // a javascript:, data: or relative link stays plain text
  }
  const a = el('a');
  a.href = url.href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  if (label === href) a.textContent = label;
  else inline(a, label);
  return a;
}

// ---------- phone layout ----------

// The visual viewport shrinks when the on-screen keyboard opens (iOS does not resize the layout): size the
// app to it so the composer stays above the keyboard.
if (window.visualViewport) {
  const fit = () => {
    document.documentElement.style.setProperty('--vvh', `${visualViewport.height}px`);
    if (document.activeElement === input) window.scrollTo(0, 0);
  };
  visualViewport.addEventListener('resize', fit);
  fit();
}

// ---------- start ----------

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
  // The most recent conversation opens by default; with none yet, the first send starts one.
  if (state.convs.length) await openConv(state.convs[0].id);
  else { clearChat(); showView('chat'); }
  flushPending();
}

// The allowed projects (the first is the default); a picker only when there is a choice.
async function loadProjects() {
  const { projects = [] } = await (await api('GET', '/api/status')).json();
  const select = $('project');
  select.replaceChildren(...projects.map((p) => {
    const option = el('option', null, p.split('/').filter(Boolean).pop() || p);
    option.value = p;
    option.title = p;
    return option;
  }));
  $('project-pick').hidden = projects.length < 2;
}

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
