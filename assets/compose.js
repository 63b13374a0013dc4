// The composer and sending: the text field, Enter or Send, and each message's way to the server. A message the
// server has not accepted yet (offline, or the answer was lost) waits in a queue that survives a reload, shows as
// "not sent yet" with a Cancel, and is sent again with the same client_id, so Claude runs it once.

import { api, NetError } from './api.js';
import { el } from './markdown.js';
import { $, above, errorCard, follow, saveCopy, state, steerShown, TurnView, userBubble } from './turn.js';

// crypto.randomUUID exists only in secure contexts; a plain-HTTP LAN address is not one.
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const input = $('input');

// The attachments module (attach.js), loaded when the person first picks a photo or a file.
let attach = null;
$('files').addEventListener('change', async () => {
  const files = [...$('files').files];
  $('files').value = '';
  if (!files.length) return;
  attach ??= await import('./attach.js');
  await attach.add(files);
});
// The "+" is the picker's label (a tap opens it natively); from the keyboard, Enter or Space does.
$('attach').addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); $('files').click(); }
});

function grow() {
  input.style.height = 'auto'; // CSSOM writes are allowed by the CSP; style attributes in markup are not
  input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}
input.addEventListener('input', () => { grow(); steerShown(); });

// Enter sends where there is a real keyboard and a mouse; on a phone Enter is a new line (its key says so:
// enterkeyhint="enter") and the button sends.
input.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && matchMedia('(pointer: fine)').matches) {
    ev.preventDefault();
    $('composer').requestSubmit();
  }
});

$('composer').addEventListener('submit', (ev) => {
  ev.preventDefault();
  compose(false);
});
// While a turn runs, a message either waits behind it (Send) or stops it and runs next (Interrupt and send).
$('steer').addEventListener('click', () => compose(true));

async function compose(interrupt) {
  // A photo alone still goes, with a few words for Claude.
  const text = input.value.trim() || (attach && attach.count() ? 'See the attached.' : '');
  if (!text) return;
  if (!state.conv) {
    try { await above.newConv(); } catch { return; }
  }
  if (!(await deskAllows(state.conv))) return; // the text stays in the field
  const files = attach ? attach.take() : [];
  input.value = '';
  grow();
  steerShown();
  // The turn it stops reports its tool's error as a stop, as after Stop.
  if (interrupt && state.live) state.live.view.stopping = true;
  await submit(text, state.conv.id, interrupt, files);
}

// Claude open in a terminal on this conversation's session: two writers corrupt it, so ask first. Unknown (offline,
// an older server) is not a reason to stop.
async function deskAllows(conv) {
  if (!conv.session_id) return true;
  let desk = null;
  try {
    desk = await (await api('GET', `/api/conversations/${encodeURIComponent(conv.id)}/desk`)).json();
  } catch { return true; }
  if (!desk || !desk.live) return true;
  return !!(await above.ask({
    title: 'Claude is open on the computer in this session — sending from here too can corrupt it.',
    text: 'Send anyway?', ok: 'Send anyway', danger: true,
  }));
}

// Sends a message of the open conversation (typed, or again by Retry); `interrupt`: it stops the running turn.
// `files`: its attachments, from attach.js.
export async function submit(text, conv, interrupt = false, files = []) {
  // One client_id per message, kept across retries, makes a resend after a lost answer run Claude only once.
  const p = pendingItem({ conv, text, client_id: uuid(), files });
  p.interrupt = interrupt; // not kept across a reload: by then the turn it meant to stop is another
  $('messages').append(p.bubble);
  $('messages').scrollTop = $('messages').scrollHeight;
  state.pending.push(p);
  savePending();
  await send(p);
}

// A message not yet accepted by the server: its bubble says so and has a Cancel that withdraws it.
function pendingItem(p) {
  p.bubble = userBubble(p.text, (p.files || []).map((f) => ({ name: f.name, kind: f.kind,
    url: f.url || URL.createObjectURL(f.blob) })));
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

// One send at a time per message: a second call gets the one on its way, so that waiting for it (flushPending)
// waits until it is answered.
function send(p) {
  if (!p.sending) p.sending = trySend(p).finally(() => { p.sending = null; });
  return p.sending;
}

async function trySend(p) {
  try {
    const fields = { message: p.text, client_id: p.client_id, ...(p.interrupt ? { interrupt: true } : {}) };
    let body = fields;
    if (p.files && p.files.length) {
      // Multipart: the bytes go as they are, not a third larger in base64.
      body = new FormData();
      for (const [k, v] of Object.entries(fields)) body.append(k, String(v));
      for (const f of p.files) body.append('attachments', new File([f.blob], f.name, { type: f.type }));
    }
    const res = await api('POST', `/api/conversations/${encodeURIComponent(p.conv)}/messages`, body);
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
    if (state.conv && state.conv.id === p.conv) {
      const box = $('messages');
      if ([...box.querySelectorAll('.turn')].some((t) => t.dataset.turn === String(id))) {
        // The conversation was loaded again while this send was on its way, and the server had the message by
        // then: the transcript shows it (and follows its turn), so the unsent bubble goes, or it would show twice.
        p.bubble.remove();
      } else if (p.bubble.isConnected) {
        const view = new TurnView(id, p.text);
        const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
        p.bubble.after(view.el);
        if (stick) box.scrollTop = box.scrollHeight;
        follow(id, view);
      } else {
        // A load of this conversation is on its way (it took the bubble off the screen); its answer may be from
        // before the server had the message, so it shows the message from here if the transcript lacks it.
        state.accepted.push({ conv: p.conv, id, text: p.text });
      }
    }
    above.loadList().catch(() => {});
    saveCopy(p.conv);
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
        if (state.conv && state.conv.id === p.conv) submit(p.text, p.conv, false, p.files);
      });
      if (p.bubble.isConnected) p.bubble.after(card);
    }
  }
}

// Settles when each send has been answered or has failed.
export function flushPending() {
  return Promise.allSettled(state.pending.filter((p) => !p.withdrawn).map(send));
}

// Unsent messages survive a reload or a closed tab (they are the user's own words, not history); one with
// attachments only while the page lives (its photos are too large to keep there).
function savePending() {
  localStorage.setItem('ra.pending', JSON.stringify(state.pending.filter((p) => !(p.files && p.files.length)).map(({ conv, text, client_id: c }) =>
    ({ conv, text, client_id: c }))));
}
export function loadPending() {
  try {
    state.pending = (JSON.parse(localStorage.getItem('ra.pending')) || []).map((p) => {
      const item = pendingItem({ conv: p.conv, text: p.text, client_id: p.client_id });
      item.note.hidden = false;
      return item;
    });
  } catch { state.pending = []; }
}
