// A turn on screen: the user's bubble, the reply as it streams (text, thinking, tool cards, errors, the footer),
// and following a turn's events live, over a fetch stream with a long poll as the fallback. It also holds the state
// the modules share (the open conversation, the turn being followed, the unsent messages) and the error cards.

import { api, getJSON, isOffline } from './api.js';
import { el, markdown } from './markdown.js';

export const $ = (id) => document.getElementById(id);
const STALL_MS = 20000; // no bytes on the stream for this long while a turn runs → switch to the long poll

export const state = {
  convs: [],
  conv: null, // the open conversation
  gen: 0, // bumped when the open conversation changes, so followers of the old one stop
  chain: Promise.resolve(), // turns of the open conversation are followed one after another
  live: null, // the turn being followed: {id, view, last, ctrl, done}
  pending: [], // sends not yet accepted by the server (offline): {conv, text, client_id, bubble}
  accepted: [], // sends accepted while their conversation was loading again, until it shows them: {conv, id, text}
  waitingHere: null, // requests waiting in the open conversation, once known (else the list's `waiting` says)
  modes: null, // the permission modes a conversation may choose, and the default: {allowed, default}
};

// What the modules above this one do for it: send a message again (Retry), start a conversation, reload the list,
// redraw the header, show a request of Claude's and end it, ask a yes-or-no question. app.js fills these in at startup, so that imports only
// go one way (app → compose → turn → markdown, api; requests.js, loaded by app.js, → turn).
export const above = {
  submit: async () => {},
  newConv: async () => {},
  loadList: async () => {},
  markHeader: () => {},
  request: () => {},
  requestEnded: () => {},
  turnEnded: () => {},
  ask: async () => true,
  changes: () => {}, // a finished turn's "Changes" strip (changes.js)
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const money = (c) => (c == null ? '' : `$${Number(c).toFixed(c < 1 ? 4 : 2)}`);

// A stream that outlived a network change or a sleep in the background is likely dead without knowing it:
// drop it and resume from the last event id (the server gives exactly the events after it).
export function resumeLive() {
  if (state.live && !state.live.done && state.live.ctrl) state.live.ctrl.abort();
}

// ---------- one turn's view ----------

const STATUS_TEXT = {
  queued: 'Queued…', running: 'Running…', succeeded: 'Done', failed: 'Failed', cancelled: 'Cancelled',
  timed_out: 'Timed out', interrupted: 'Interrupted (the server stopped)', cancelling: 'Stopping…',
};

export class TurnView {
  constructor(id, prompt) {
    this.id = id;
    this.prompt = prompt; // what Retry sends again
    this.el = el('div', 'turn');
    this.el.dataset.turn = id;
    // While the turn waits (behind another, or for a free slot) it says so and can be withdrawn.
    this.queueEl = el('div', 'turn-queue');
    const withdraw = el('button', 'text', 'Withdraw');
    withdraw.type = 'button';
    withdraw.setAttribute('aria-label', 'Withdraw the queued message');
    withdraw.addEventListener('click', async () => {
      withdraw.disabled = true;
      try {
        await api('POST', `/api/turns/${id}/cancel`);
        withdraw.textContent = 'Withdrawing…';
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
      case 'request': above.request(d); break;
      case 'request_ended': above.requestEnded(d); break;
      case 'done': this.setStatus(d.status); above.turnEnded(this.id); break;
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
      if (conv) above.submit(this.prompt, conv.id);
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
      // The reply so far of an ended turn stays, without its typing cursor; one the server stopped is marked as
      // cut short.
      const cut = this.textEl || this.lastBubble;
      if (this.textEl) { this.renderText(); this.textEl.classList.remove('streaming'); this.textEl = null; }
      if (s === 'interrupted' && cut && !cut.classList.contains('interrupted')) {
        cut.classList.add('interrupted');
        cut.append(el('div', 'cut', 'interrupted'));
      }
      this.foot.dataset.status = s;
      this.footStatus = STATUS_TEXT[s];
      this.drawFoot();
      above.changes(this);
    }
  }

  // A turn that had not ended when the saved copy (offline) was made: what it became is not known, so it offers
  // nothing (no Cancel, no Stop) until the server is back and the conversation is loaded again.
  unfinished() {
    this.queueEl.hidden = true;
    this.foot.dataset.status = 'unknown';
    this.foot.textContent = 'Not finished when this copy was saved';
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

// A message of the person's, with what it brought: thumbnails (a tap opens the full image) and files by name.
// `attachments`: as the transcript lists them ({id, name, kind}), or, before the server has them, {name, kind, url}.
export function userBubble(text, attachments = []) {
  const b = el('div', 'bubble user');
  if (attachments.length) {
    const row = el('div', 'attachments');
    for (const a of attachments) {
      const link = el('a', a.kind === 'image' ? 'thumb' : 'file');
      link.href = a.url || `/api/attachments/${encodeURIComponent(a.id)}`;
      link.target = '_blank';
      link.rel = 'noopener';
      if (a.kind === 'image') {
        const img = el('img');
        img.src = link.href;
        img.alt = a.name;
        img.loading = 'lazy';
        link.append(img);
      } else {
        link.textContent = `📄 ${a.name}`;
        link.download = a.name;
      }
      row.append(link);
    }
    b.append(row);
  }
  b.append(text);
  return b;
}

// Renders finished turns from the stored transcript. A turn without a `result` has not ended: it gets only its
// user bubble here and is followed on its event stream from the start (a replay is the same stream), so no part
// of it is drawn twice. Returns those unfinished turns.
export function renderTranscript(box, messages) {
  // Every turn has a result entry; a turn still queued or running has no finished_at, and is followed live.
  const ended = new Set(messages.filter((m) => m.type === 'result' && m.finished_at).map((m) => m.turn_id));
  const views = new Map();
  const live = [];
  for (const m of messages) {
    if (m.type === 'user') {
      box.append(userBubble(m.text, m.attachments || []));
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

// ---------- following a turn's events ----------

export function setStatus(text, kind) {
  $('status').textContent = text;
  $('status').dataset.kind = kind || '';
  const running = kind === 'queued' || kind === 'running';
  $('stop').hidden = !running;
  steerShown();
}

// "Interrupt and send" is offered while a turn runs and there is something to send.
export function steerShown() {
  $('steer').hidden = $('status').dataset.kind !== 'running' || !$('input').value.trim();
}

// Follows the turns of the open conversation one after another (they run in order on the server too).
export function follow(id, view) {
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
      while (isOffline() && gen === state.gen) await sleep(500);
    }
  }
  if (gen !== state.gen) return;
  state.live = null;
  setStatus(''); // the turn's own footer keeps its outcome
  if (t.done) {
    try { view.meta(await getJSON(`/api/turns/${id}`)); } catch { /* meta stays from the result event */ }
    above.loadList().catch(() => {});
    if (state.conv) saveCopy(state.conv.id);
  }
}

// The service worker keeps a copy of each transcript it passes on, for a reload while offline. The app asks for the
// transcript again when it changed (a message accepted, a turn ended), so that the copy is the latest and not the
// one from when the page opened the conversation.
export function saveCopy(conv) {
  if (!navigator.serviceWorker || !navigator.serviceWorker.controller) return;
  api('GET', `/api/conversations/${encodeURIComponent(conv)}`).catch(() => {});
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

export function flash(msg) {
  setStatus(msg, 'error');
}

// An error is a card of its own, never a reply: what went wrong in the server's words ("disk full", "database
// damaged: run `remote-agent doctor`", …) and, when it can help, a Retry.
export function errorCard(title, text, retry) {
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
export function showError(title, text, retry) {
  const box = $('messages');
  box.append(errorCard(title, text, retry));
  box.scrollTop = box.scrollHeight;
}
