// What Claude asks and what it may do: a request (a tool to approve, questions, a plan) as a card pinned below the
// open conversation until it is answered, withdrawn or expired, with a one-line record left in its turn; and the
// dialog that sets the conversation's permission mode and model. app.js loads this module when first needed (a
// request arrives or is pending, or the mode button is tapped), so that a visit without either does not fetch it.

import { api } from './api.js';
import { el, markdown } from './markdown.js';
import { $, above, flash, setStatus, state } from './turn.js';

const cards = new Map(); // request id → {req, card}, for the open conversation
const over = new Set(); // request ids already ended here: never shown again, their record never written twice

// The header's "waiting for you" and the status line follow the cards on screen.
function counted() {
  state.waitingHere = cards.size;
  above.markHeader();
  if (state.live && state.live.view.status === 'running') {
    setStatus(cards.size ? 'Waiting for your answer…' : 'Running…', 'running');
  }
}

// ---------- the requests of the open conversation ----------

// A `request` event, or one of GET /api/requests.
export function showRequest(req) {
  if (!req || !req.id || cards.has(req.id) || over.has(req.id)) return;
  if (!state.conv || req.conversation_id !== state.conv.id || (req.state && req.state !== 'pending')) return;
  const card = render(req);
  cards.set(req.id, { req, card });
  // The transcript gives the card room from below: one that showed its newest messages still does.
  const box = $('messages');
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  $('requests').append(card);
  $('requests').hidden = false;
  if (stick) box.scrollTop = box.scrollHeight;
  counted();
  above.loadList().catch(() => {});
}

// Opened from a notification about request `id`: its card is scrolled into view and marked for a moment.
export function focusRequest(id) {
  const entry = cards.get(id);
  if (!entry) return;
  entry.card.scrollIntoView({ block: 'nearest' });
  entry.card.classList.add('req-focus');
  setTimeout(() => entry.card.classList.remove('req-focus'), 4000);
}

// A `request_ended` event: {id, state, decision?}.
export function endRequest(d) {
  const entry = cards.get(d.id);
  if (entry) finish(entry.req, words(entry.req, d));
  else over.add(d.id);
}

// The turn ended: a request of it can no longer be answered.
export function turnEnded(turnId) {
  for (const { req } of [...cards.values()]) if (req.turn_id === turnId) finish(req, words(req, { state: 'expired' }));
}

// Another conversation opens (or none): its cards go.
export function clearRequests() {
  cards.clear();
  over.clear();
  $('requests').replaceChildren();
  $('requests').hidden = true;
}

// The card goes; its turn keeps a line saying what became of it.
function finish(req, line) {
  const entry = cards.get(req.id);
  cards.delete(req.id);
  if (over.has(req.id)) return;
  over.add(req.id);
  if (entry) entry.card.remove();
  $('requests').hidden = !cards.size;
  const rec = el('div', 'req-record', line);
  const turn = [...$('messages').querySelectorAll('.turn')].find((t) => t.dataset.turn === req.turn_id);
  if (turn) turn.insertBefore(rec, turn.querySelector('.turn-foot'));
  else $('messages').append(rec);
  counted();
}

// ---------- what a request is, in words ----------

const base = (p) => String(p || '').split('/').filter(Boolean).pop() || String(p || '');
const oneLine = (s) => {
  const t = String(s ?? '').split('\n')[0];
  return t.length > 100 || String(s).includes('\n') ? `${t.slice(0, 100)}…` : t;
};

function titleOf(req) {
  if (req.title) return req.title;
  const i = req.input || {};
  if (req.kind === 'question') {
    const n = (i.questions || []).length;
    return n > 1 ? `Claude asks you ${n} questions` : 'Claude asks you a question';
  }
  if (req.kind === 'plan') return 'Claude has a plan for you to approve';
  switch (req.tool_name) {
    case 'Bash': return 'Claude wants to run a command';
    case 'Edit': case 'MultiEdit': return `Claude wants to edit ${base(i.file_path)}`;
    case 'Write': return `Claude wants to write ${base(i.file_path)}`;
    case 'Read': return `Claude wants to read ${base(i.file_path)}`;
    case 'WebFetch': return 'Claude wants to fetch a web page';
    case 'WebSearch': return 'Claude wants to search the web';
    default: return `Claude wants to use ${req.display_name || req.tool_name}`;
  }
}

// What it was about, short: the command, the file, the URL, the question.
function about(req) {
  const i = req.input || {};
  if (req.kind === 'question') return oneLine((i.questions || [])[0]?.question || 'a question');
  if (req.kind === 'plan') return 'the plan';
  return oneLine(i.command || i.file_path || i.notebook_path || i.url || i.query || i.pattern
    || req.display_name || req.tool_name);
}

const DECIDED = { allow: 'Allowed', allow_always: 'Always allowed', deny: 'Denied', deny_and_stop: 'Denied and stopped' };

// The record's line: "Allowed: touch x", "Withdrawn by Claude: …", "Expired: …", "Plan approved", …
function words(req, d, extra = '') {
  const what = about(req);
  if (d.state === 'withdrawn') return `Withdrawn by Claude: ${what}`;
  if (d.state === 'expired') return `Expired: ${what}`;
  if (d.state !== 'answered') return `${d.state}: ${what}`;
  const yes = d.decision === 'allow' || d.decision === 'allow_always';
  if (req.kind === 'plan') return (yes ? 'Plan approved' : 'Kept planning') + extra;
  if (req.kind === 'question') return (yes ? 'Answered' : 'Declined') + (extra || `: ${what}`);
  return `${DECIDED[d.decision] || 'Answered'}: ${what}${extra}`;
}

// A permission suggestion (a rule "Always" adds) in words: nodes, with code in <code>.
const WHERE = {
  session: 'for the rest of this session', localSettings: 'in this project', projectSettings:
    'in this project, for everyone who works on it', userSettings: 'in all your projects',
};
export const MODES = {
  plan: ['Plan', 'Plan: plans, changes nothing'],
  default: ['Ask', 'Ask: asks before each change'],
  acceptEdits: ['Edits', 'Accept edits: edits, asks for the rest'],
  auto: ['Auto', 'Auto: decides what to ask'],
  dontAsk: ['No asking', "Don't ask: refuses what is not allowed"],
  bypassPermissions: ['Bypass', 'Bypass: does anything, never asks'],
};
function ruleWords(s) {
  const p = el('span');
  const where = WHERE[s.destination] || (s.destination ? `(${s.destination})` : '');
  const rules = (list) => list.forEach((r, k) => {
    if (k) p.append(' and ');
    p.append(r.toolName || 'a tool');
    if (r.ruleContent) { p.append(': '); p.append(el('code', null, r.ruleContent)); } else p.append(' (any use)');
  });
  switch (s.type) {
    case 'addRules': case 'replaceRules':
      p.append(`Always ${s.behavior || 'allow'} `);
      rules(s.rules || []);
      p.append(` ${where}${s.type === 'replaceRules' ? ', replacing the rules there' : ''}`);
      break;
    case 'removeRules':
      p.append(`Remove the ${s.behavior || 'allow'} rule for `);
      rules(s.rules || []);
      p.append(` ${where}`);
      break;
    case 'setMode':
      p.append(s.mode === 'acceptEdits' ? 'Accept edits' : `Switch to the mode ${(MODES[s.mode] || [s.mode])[1]}`);
      p.append(` ${where}`);
      break;
    case 'addDirectories': case 'removeDirectories':
      p.append(s.type === 'addDirectories' ? 'Allow access to ' : 'Remove access to ');
      (s.directories || []).forEach((d, k) => { if (k) p.append(', '); p.append(el('code', null, d)); });
      p.append(` ${where}`);
      break;
    default: p.append(el('code', null, JSON.stringify(s)));
  }
  return p;
}

// ---------- the card ----------

function button(text, cls, onClick) {
  const b = el('button', cls, text);
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}
const row = (cls, ...items) => { const r = el('div', `req-row ${cls}`); r.append(...items); return r; };
const pre = (text, cls = 'req-code') => el('pre', cls, text);

function render(req) {
  const card = el('section', 'req-card');
  card.dataset.request = req.id;
  card.dataset.kind = req.kind;
  const title = el('h3', 'req-title', titleOf(req));
  title.id = `req-${req.id}`;
  card.setAttribute('aria-labelledby', title.id);
  const conv = state.convs.find((c) => c.id === req.conversation_id) || state.conv || {};
  const project = el('div', 'req-project', conv.project ? `in ${base(conv.project)}` : '');
  project.title = conv.project || '';
  card.append(title, project);
  const err = el('p', 'req-error');
  err.setAttribute('role', 'alert');
  err.hidden = true;
  const ctx = { req, card, err, busy: false };
  if (req.kind === 'question') questionCard(ctx);
  else if (req.kind === 'plan') planCard(ctx);
  else toolCard(ctx);
  card.append(err);
  return card;
}

// Sends the answer; the card goes with a record (or with the server's reason, when it is too late: 409, 410, 404).
async function answer(ctx, body, extra = '', then = null) {
  if (ctx.busy) return;
  ctx.busy = true;
  ctx.card.classList.add('busy');
  for (const b of ctx.card.querySelectorAll('button')) b.disabled = true;
  ctx.err.hidden = true;
  try {
    await api('POST', `/api/requests/${encodeURIComponent(ctx.req.id)}`, body);
    finish(ctx.req, words(ctx.req, { state: 'answered', decision: body.decision }, extra));
    if (then) await then();
    above.loadList().catch(() => {});
  } catch (e) {
    if ([404, 409, 410].includes(e.status)) { finish(ctx.req, `${about(ctx.req)}: ${e.message}`); flash(e.message); }
    else {
      ctx.err.textContent = `Not sent: ${e.message}`;
      ctx.err.hidden = false;
    }
  } finally {
    ctx.busy = false;
    ctx.card.classList.remove('busy');
    for (const b of ctx.card.querySelectorAll('button')) b.disabled = false;
  }
}

// A note for Claude, sent with a denial (or with "Keep planning").
function noteField(label) {
  const d = el('details', 'req-note');
  const t = el('textarea');
  t.rows = 2;
  t.setAttribute('aria-label', label);
  t.placeholder = 'Say what Claude should do instead';
  d.append(el('summary', null, label), t);
  return { el: d, value: () => t.value.trim() || undefined };
}

function toolCard(ctx) {
  const { req, card } = ctx;
  const i = req.input || {};
  let edited = null; // the command's field, once "Edit command" was tapped
  const desc = i.description || req.description;
  switch (req.tool_name) {
    case 'Bash':
      card.append(pre(i.command || ''));
      break;
    case 'Edit': case 'MultiEdit': case 'Write':
      if (req.diff) {
        card.append(el('div', 'req-path', i.file_path || ''), fileDiff(req.diff));
        break;
      }
      if (req.tool_name === 'Write') {
        card.append(el('div', 'req-path', `${i.file_path || ''} (new content, ${lines(i.content)} lines)`));
        card.append(pre(i.content || ''));
      } else {
        card.append(el('div', 'req-path', i.file_path || ''));
        card.append(diff(i.edits || [i]));
      }
      if (req.diff_note) card.append(el('p', 'req-why', `No diff of the file: ${req.diff_note}`));
      break;
    case 'WebFetch':
      card.append(pre(i.url || '', 'req-code req-url'));
      if (i.prompt) card.append(el('p', 'req-desc', i.prompt));
      break;
    default:
      card.append(pre(JSON.stringify(i, null, 2)));
  }
  if (desc && desc !== i.command) card.append(el('p', 'req-desc', desc));
  const path = req.blocked_path !== i.file_path && req.blocked_path; // not twice
  const why = [req.decision_reason, path && `Path: ${path}`].filter(Boolean).join(' · ');
  if (why) card.append(el('p', 'req-why', why));
  const note = noteField('Note for Claude with Deny');
  const input = () => (edited && edited.value !== i.command ? { input: { ...i, command: edited.value } } : {});
  const deny = button('Deny', 'deny', () => answer(ctx, { decision: 'deny', message: note.value() }));
  const allow = button('Allow', 'primary allow', () => answer(ctx, { decision: 'allow', ...input() },
    edited && edited.value !== i.command ? ' (edited)' : ''));
  card.append(row('req-main', deny, allow));
  const more = row('req-more', button('Deny and stop', 'secondary stop-deny',
    () => answer(ctx, { decision: 'deny_and_stop', message: note.value() })));
  if (req.tool_name === 'Bash') {
    const edit = button('Edit command', 'secondary edit', () => {
      edited = el('textarea', 'req-edit');
      edited.value = i.command || '';
      edited.rows = Math.min(8, lines(i.command) + 1);
      edited.setAttribute('aria-label', 'The command to run');
      card.querySelector('.req-code').replaceWith(edited);
      edit.remove();
      edited.focus();
    });
    more.append(edit);
  }
  card.append(more, note.el);
  const suggestions = Array.isArray(req.suggestions) ? req.suggestions : [];
  if (suggestions.length) card.append(alwaysRow(ctx, suggestions, input));
}

// "Always…" sits apart from Allow and Deny, and first says in words what it adds, then asks to confirm.
function alwaysRow(ctx, suggestions, input) {
  const box = el('div', 'req-always');
  const start = button('Always…', 'secondary always', () => {
    const form = el('div', 'req-confirm');
    form.append(el('p', null, suggestions.length > 1 ? 'Add one of these, then allow:' : 'This adds, then allows:'));
    let picked = 0;
    suggestions.forEach((s, k) => {
      if (suggestions.length === 1) {
        const p = el('p', 'req-rule');
        p.append(ruleWords(s));
        form.append(p);
        return;
      }
      const l = el('label', 'req-opt');
      const r = el('input');
      r.type = 'radio';
      r.name = `always-${ctx.req.id}`;
      r.checked = k === 0;
      r.addEventListener('change', () => { picked = k; });
      l.append(r, ruleWords(s));
      form.append(l);
    });
    const cancel = button('Cancel', 'secondary', () => { form.replaceWith(start); });
    const ok = button('Confirm: always', 'primary', () => answer(ctx,
      { decision: 'allow_always', suggestion: picked, ...input() }));
    form.append(row('req-main', cancel, ok));
    start.replaceWith(form);
    form.scrollIntoView({ block: 'nearest' });
  });
  box.append(start);
  return box;
}

const lines = (s) => String(s || '').split('\n').length;

// A unified diff of each edit's old and new text: the lines removed, then added, around the lines kept.
function diff(edits) {
  const out = el('pre', 'req-code req-diff');
  edits.forEach((e, k) => {
    if (edits.length > 1) out.append(el('span', 'd-hunk', `@@ edit ${k + 1}${e.replace_all ? ', every occurrence' : ''} @@`));
    else if (e.replace_all) out.append(el('span', 'd-hunk', '@@ every occurrence @@'));
    for (const [sign, text] of lineDiff(String(e.old_string ?? '').split('\n'), String(e.new_string ?? '').split('\n'))) {
      out.append(el('span', sign === '-' ? 'd-del' : sign === '+' ? 'd-add' : 'd-ctx', `${sign} ${text}`));
    }
  });
  return out;
}

// The server's unified diff of the file: one column, each line with its number (the new file's, the old one's for a
// removed line, counted from the hunk headers); the ---/+++ headers left out (the path is above).
function fileDiff(text) {
  const out = el('pre', 'req-code req-diff req-filediff');
  let [o, n, hunks] = [0, 0, false];
  const line = (cls, num, t) => {
    const l = el('span', cls);
    l.append(el('span', 'd-num', num ? String(num) : ''), el('span', 'd-text', t));
    out.append(l);
  };
  for (const t of String(text).replace(/\n$/, '').split('\n')) {
    const h = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(t);
    if (h) { [o, n, hunks] = [Number(h[1]), Number(h[2]), true]; line('d-hunk', 0, t); }
    else if (!hunks) continue; // the ---/+++ headers
    else if (t.startsWith('-')) line('d-del', o++, t);
    else if (t.startsWith('+')) line('d-add', n++, t);
    else if (t.startsWith('\\')) line('d-hunk', 0, t);
    else { line('d-ctx', n++, t); o++; }
  }
  return out;
}

// The longest common subsequence of lines; past ~40 000 cells, everything old removed and everything new added.
function lineDiff(a, b) {
  if (a.length * b.length > 40000) return [...a.map((l) => ['-', l]), ...b.map((l) => ['+', l])];
  const n = a.length;
  const m = b.length;
  const L = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let x = n - 1; x >= 0; x--) {
    for (let y = m - 1; y >= 0; y--) L[x][y] = a[x] === b[y] ? L[x + 1][y + 1] + 1 : Math.max(L[x + 1][y], L[x][y + 1]);
  }
  const out = [];
  let x = 0;
  let y = 0;
  while (x < n || y < m) {
    if (x < n && y < m && a[x] === b[y]) { out.push([' ', a[x]]); x++; y++; }
    else if (y >= m || (x < n && L[x + 1][y] >= L[x][y + 1])) out.push(['-', a[x++]]);
    else out.push(['+', b[y++]]);
  }
  return out;
}

// AskUserQuestion: each question with its options (radio, or checkboxes for multiSelect) and "Other" with text.
function questionCard(ctx) {
  const qs = (ctx.req.input || {}).questions || [];
  const read = qs.map((q, qi) => {
    const set = el('fieldset', 'req-q');
    const legend = el('legend');
    if (q.header) legend.append(el('span', 'req-chip', q.header));
    legend.append(q.question || '');
    set.append(legend);
    const type = q.multiSelect ? 'checkbox' : 'radio';
    const name = `q-${ctx.req.id}-${qi}`;
    const opts = [...(q.options || []), { label: 'Other', other: true }].map((o) => {
      const l = el('label', 'req-opt');
      const r = el('input');
      r.type = type;
      r.name = name;
      const text = el('span');
      text.append(el('span', 'req-opt-label', o.label));
      if (o.description) text.append(el('span', 'req-opt-desc', o.description));
      l.append(r, text);
      set.append(l);
      return { o, r, l };
    });
    // "Other" is its own answer, typed: typing picks it.
    const other = el('input', 'req-other');
    other.placeholder = 'Other…';
    other.setAttribute('aria-label', `Other answer to: ${q.question}`);
    const last = opts[opts.length - 1];
    last.r.setAttribute('aria-label', 'Other');
    last.l.lastChild.replaceWith(other);
    other.addEventListener('input', () => { last.r.checked = !!other.value.trim(); });
    last.r.addEventListener('change', () => { if (last.r.checked) other.focus(); });
    ctx.card.append(set);
    return () => {
      const picked = opts.filter((x) => x.r.checked).map((x) => (x.o.other ? other.value.trim() : x.o.label))
        .filter(Boolean);
      return picked.length ? [q.question, picked.join(', ')] : null;
    };
  });
  const decline = button('Decline', 'deny', () => answer(ctx, { decision: 'deny', message: 'The user declined to answer.' }));
  const submit = button('Submit', 'primary allow', () => {
    const got = read.map((f) => f());
    if (got.some((x) => !x)) {
      ctx.err.textContent = 'Answer each question (or Decline).';
      ctx.err.hidden = false;
      return;
    }
    const answers = Object.fromEntries(got);
    answer(ctx, { decision: 'allow', answers }, `: ${got.map(([, a]) => a).join('; ')}`);
  });
  ctx.card.append(row('req-main', decline, submit));
}

// ExitPlanMode: the plan as Markdown; Approve, Approve and accept edits, or Keep planning with a note.
function planCard(ctx) {
  const plan = el('div', 'bubble assistant req-plan');
  plan.append(markdown(String((ctx.req.input || {}).plan || '')));
  const note = noteField('Note for Claude with Keep planning');
  const keep = button('Keep planning', 'deny', () => answer(ctx, { decision: 'deny', message: note.value() }));
  const approve = button('Approve', 'primary allow', () => answer(ctx, { decision: 'allow' }));
  const edits = button('Approve and accept edits', 'secondary accept-edits', () => answer(ctx, { decision: 'allow' },
    ', accepting edits', () => setMode({ permission_mode: 'acceptEdits' })));
  ctx.card.append(plan, row('req-main', keep, approve), note.el, row('req-always', edits));
}

// ---------- the conversation's mode and model ----------

async function setMode(change) {
  const conv = state.conv;
  if (!conv) return;
  try {
    const c = await (await api('PATCH', `/api/conversations/${encodeURIComponent(conv.id)}`, change)).json();
    if (state.conv && state.conv.id === conv.id) state.conv = { ...state.conv, ...(c.conversation || c) };
    above.markHeader();
  } catch (e) { flash(`Could not change the mode: ${e.message}`); }
}

// The dialog: the modes GET /api/status allows (read at start-up), else plan, default and acceptEdits.
export async function openModes() {
  const conv = state.conv;
  const d = $('modes');
  if (!conv || typeof d.showModal !== 'function') return;
  if (!state.modes) {
    try { state.modes = (await (await api('GET', '/api/status')).json()).permission_modes || null; } catch { /* */ }
  }
  const { allowed = ['plan', 'default', 'acceptEdits'], default: dflt = null } = state.modes || {};
  const pick = $('mode-pick');
  const modes = [...allowed];
  if (conv.permission_mode && !modes.includes(conv.permission_mode)) modes.push(conv.permission_mode);
  const name = (m) => (MODES[m] || [m, m])[1];
  pick.replaceChildren(...['', ...modes].map((m) => {
    const o = el('option', null, m ? name(m) : `The server's setting${dflt ? ` (${name(dflt)})` : ''}`);
    o.value = m;
    return o;
  }));
  pick.value = conv.permission_mode || '';
  $('model-pick').value = conv.model || '';
  d.returnValue = '';
  d.showModal();
  d.addEventListener('close', () => {
    if (d.returnValue !== 'ok' || !state.conv || state.conv.id !== conv.id) return;
    const change = {};
    if ((pick.value || null) !== (conv.permission_mode || null)) change.permission_mode = pick.value || null;
    const model = $('model-pick').value.trim() || null;
    if (model !== (conv.model || null)) change.model = model;
    if (Object.keys(change).length) setMode(change);
  }, { once: true });
}
$('modes').addEventListener('click', (e) => { if (e.target === $('modes')) $('modes').close(); });
