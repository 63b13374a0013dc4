// What a turn changed, imported when the first finished turn asks: the "Changes" strip under a turn (files, +/−),
// the sheet with the list of files (status, +/−, "other" for a change no edit tool call of Claude's made), and a
// diff made for a narrow screen (one column, line numbers, long lines wrapped, syntax colours from a small
// tokenizer, whitespace-only changes behind a toggle). "All changes" shows the same for a whole conversation.
// File content only ever reaches the page as textContent.

import { getJSON } from './api.js';
import { el } from './markdown.js';

// ---------- the strip under a turn ----------

const queue = [];
let running = 0;
const PARALLEL = 2; // a long transcript asks for many turns' changes: a few at a time

function next() {
  while (running < PARALLEL && queue.length) {
    const job = queue.shift();
    running++;
    job().finally(() => { running--; next(); });
  }
}

// Asks for the turn's changes and, if it changed anything, puts the strip under it. A change set still being
// recorded (`pending`) is asked for again shortly.
export function strip(view) {
  if (!view || !view.id || view.id.startsWith('history-') || view.changesAsked) return;
  view.changesAsked = true;
  const load = async (tries) => {
    if (!view.el.isConnected && tries < 15) return;
    // A plain fetch, not api(): a strip is decoration, and its answer (or its failure) must not say that the
    // server is reachable or not, which api() does for the whole app.
    let set;
    try {
      const res = await fetch(`/api/turns/${view.id}/changes`, {
        headers: { 'X-Requested-With': 'remote-agent' }, credentials: 'same-origin',
      });
      if (!res.ok || res.headers.get('X-RA-Cached')) return;
      set = await res.json();
    } catch { return; }
    if (set.pending && tries < 15) {
      setTimeout(() => { queue.push(() => load(tries + 1)); next(); }, 700);
      return;
    }
    const files = set.files || [];
    if (!files.length) return;
    const add = files.reduce((n, f) => n + (f.added || 0), 0);
    const del = files.reduce((n, f) => n + (f.removed || 0), 0);
    const b = el('button', 'changes-strip');
    b.type = 'button';
    b.append(el('span', 'changes-label', 'Changes'),
      el('span', 'changes-count', `${files.length} file${files.length === 1 ? '' : 's'}`),
      el('span', 'add', `+${add}`), el('span', 'del', `−${del}`));
    if (files.some((f) => f.by === 'other')) b.append(el('span', 'other-tag', 'other'));
    b.setAttribute('aria-label', `Changes: ${files.length} files, ${add} lines added, ${del} removed`);
    b.addEventListener('click', () => openChanges(`/api/turns/${view.id}/changes`, 'Changes in this turn', set));
    view.el.querySelector('.changes-strip')?.remove();
    view.el.append(b);
  };
  queue.push(() => load(0));
  next();
}

// ---------- the sheet ----------

function sheet() {
  let d = document.getElementById('changes');
  if (d) return d;
  d = el('dialog', 'sheet');
  d.id = 'changes';
  d.setAttribute('aria-labelledby', 'changes-title');
  const bar = el('header', 'bar sheet-bar');
  const back = el('button', 'icon', '‹');
  back.type = 'button';
  back.id = 'changes-back';
  back.setAttribute('aria-label', 'Back to the files');
  const title = el('h2', 'bar-title');
  title.id = 'changes-title';
  const close = el('button', 'text', 'Close');
  close.type = 'button';
  close.addEventListener('click', () => d.close());
  bar.append(back, title, close);
  const body = el('div', 'sheet-body');
  body.id = 'changes-body';
  d.append(bar, body);
  document.body.append(d);
  return d;
}

// Opens the list of a change set (`base` is its URL; `set` what was fetched already, if anything).
export async function openChanges(base, name, set) {
  const d = sheet();
  const body = d.querySelector('#changes-body');
  const title = d.querySelector('#changes-title');
  const back = d.querySelector('#changes-back');
  const showList = (s) => {
    title.textContent = name;
    back.hidden = true;
    body.replaceChildren(list(s, (f) => openFile(base, f, () => showList(s))));
    body.scrollTop = 0;
  };
  title.textContent = name;
  back.hidden = true;
  body.replaceChildren(el('p', 'muted', 'Loading…'));
  if (!d.open) d.showModal();
  try {
    showList(set || await getJSON(base));
  } catch (e) {
    body.replaceChildren(el('p', 'error-text', `Could not load the changes: ${e.message}`));
  }
}

const BADGE = { added: 'A', modified: 'M', deleted: 'D', renamed: 'R' };

function list(set, open) {
  const box = el('div', 'change-list');
  const files = set.files || [];
  if (set.pending) box.append(el('p', 'muted', 'Still being recorded…'));
  if (set.error) box.append(el('p', 'error-text', set.error));
  if (!files.length && !set.pending) box.append(el('p', 'muted', 'Nothing changed.'));
  if (!set.git && files.length) {
    box.append(el('p', 'muted', 'Not a git repository: these are the files Claude\'s edit tools named.'));
  }
  for (const f of files) {
    const row = el('button', 'change-row');
    row.type = 'button';
    row.dataset.path = f.path;
    row.dataset.status = f.status;
    const badge = el('span', `badge ${f.status}`, BADGE[f.status] || '?');
    badge.title = f.status;
    const name = el('span', 'change-path');
    if (f.old_path) name.append(el('span', 'old-path', `${f.old_path} → `));
    name.append(document.createTextNode(f.path));
    const counts = el('span', 'change-counts');
    if (f.binary) counts.append(el('span', 'muted', 'binary'));
    else counts.append(el('span', 'add', `+${f.added}`), el('span', 'del', `−${f.removed}`));
    row.append(badge, name, counts);
    if (f.by === 'other') {
      const t = el('span', 'other-tag', 'other');
      t.title = 'Not made by an edit tool call of Claude\'s: a command, you, or another program';
      row.append(t);
    }
    row.addEventListener('click', () => open(f));
    box.append(row);
  }
  return box;
}

async function openFile(base, f, backToList) {
  const d = sheet();
  const body = d.querySelector('#changes-body');
  const back = d.querySelector('#changes-back');
  d.querySelector('#changes-title').textContent = f.path;
  back.hidden = false;
  back.onclick = backToList;
  performance.mark('diff-open');
  body.replaceChildren(el('p', 'muted', 'Loading…'));
  let file;
  try {
    file = await getJSON(`${base}/${encodeURIComponent(f.path)}`);
  } catch (e) {
    body.replaceChildren(el('p', 'error-text', `Could not load the diff: ${e.message}`));
    return;
  }
  body.replaceChildren(diffView(file));
  body.scrollTop = 0;
  requestAnimationFrame(() => performance.mark('diff-painted'));
}

// ---------- the diff ----------

// One file's diff: a note for a binary or too large file, else its lines with numbers and colours.
export function diffView(file) {
  const box = el('div', 'diff-file');
  if (file.binary) { box.append(el('p', 'muted', 'Binary file: not shown.')); return box; }
  if (file.too_large) { box.append(el('p', 'muted', 'Too large to show here.')); return box; }
  if (!file.diff) {
    box.append(el('p', 'muted', file.status === 'renamed' ? 'Renamed, content unchanged.' : 'No text changes.'));
    return box;
  }
  const lang = langOf(file.path);
  const rows = el('div', 'diff');
  rows.dataset.lang = lang || '';
  let oldN = 0;
  let newN = 0;
  let block = []; // the rows of a run of - and + lines, to find whitespace-only changes
  const endBlock = () => {
    const squash = (sign) => block.filter((r) => r.sign === sign).map((r) => r.text.replace(/\s+/g, '')).join('');
    const minus = block.filter((r) => r.sign === '-');
    if (minus.length && minus.length !== block.length && squash('-') === squash('+')) {
      for (const r of block) r.row.classList.add('ws');
    }
    block = [];
  };
  let wsCount = 0;
  for (const line of file.diff.split('\n')) {
    if (line.startsWith('--- ') || line.startsWith('+++ ')) continue;
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/.exec(line);
    if (hunk) {
      endBlock();
      oldN = Number(hunk[1]);
      newN = Number(hunk[2]);
      const h = el('div', 'dl hunk');
      h.append(el('span', 'ln'), el('span', 'ln'), el('span', 'dcode', line));
      rows.append(h);
      continue;
    }
    if (line.startsWith('\\')) {
      const n = el('div', 'dl note');
      n.append(el('span', 'ln'), el('span', 'ln'), el('span', 'dcode', line.slice(2)));
      rows.append(n);
      continue;
    }
    const sign = line[0];
    if (sign !== '+' && sign !== '-' && sign !== ' ') continue;
    const text = line.slice(1);
    const row = el('div', `dl ${sign === '+' ? 'ins' : sign === '-' ? 'rem' : 'ctx'}`);
    row.append(el('span', 'ln', sign === '+' ? '' : String(oldN)), el('span', 'ln', sign === '-' ? '' : String(newN)));
    const code = el('span', 'dcode');
    paint(code, text, lang);
    row.append(code);
    rows.append(row);
    if (sign === ' ') { endBlock(); oldN++; newN++; continue; }
    if (sign === '-') oldN++; else newN++;
    block.push({ sign, text, row });
  }
  endBlock();
  wsCount = rows.querySelectorAll('.dl.ws.rem').length;
  if (wsCount) {
    const t = el('label', 'ws-toggle');
    const cb = el('input');
    cb.type = 'checkbox';
    cb.addEventListener('change', () => rows.classList.toggle('hide-ws', cb.checked));
    t.append(cb, document.createTextNode(` Hide whitespace-only changes (${wsCount} line${wsCount === 1 ? '' : 's'})`));
    box.append(t);
  }
  box.append(rows);
  return box;
}

// ---------- syntax colours ----------

const EXT = {
  js: 'js', mjs: 'js', cjs: 'js', jsx: 'js', ts: 'js', tsx: 'js', mts: 'js', cts: 'js',
  rs: 'rust', py: 'py', go: 'go', sh: 'sh', bash: 'sh', zsh: 'sh', json: 'json', css: 'css',
  html: 'html', htm: 'html', xml: 'html', svg: 'html', md: 'md', markdown: 'md',
};

export function langOf(path) {
  const name = String(path).split('/').pop();
  const ext = name.includes('.') ? name.split('.').pop().toLowerCase() : '';
  return EXT[ext] || (name === 'Dockerfile' || name === 'Makefile' ? 'sh' : '');
}

const words = (s) => `\\b(?:${s.split(' ').join('|')})\\b`;
const STR = `"(?:[^"\\\\]|\\\\.)*"?|'(?:[^'\\\\]|\\\\.)*'?`;
const NUM = '\\b(?:0x[0-9a-fA-F_]+|\\d[\\d_]*(?:\\.\\d+)?(?:e[+-]?\\d+)?)\\b';
// Each: comment, string, number, keyword (the groups of one regex, tried left to right).
const RULES = {
  js: ['//.*|/\\*.*?(?:\\*/|$)', `${STR}|\`(?:[^\`\\\\]|\\\\.)*\`?`, NUM, words('const let var function return if else for while do switch case break continue new class extends import export from default async await try catch finally throw typeof instanceof in of this null undefined true false interface type enum implements public private protected readonly static yield delete void')],
  rust: ['//.*|/\\*.*?(?:\\*/|$)', `b?${STR.split('|')[0]}|'(?:[^'\\\\]|\\\\.)'`, NUM, words('fn let mut pub use mod struct enum impl trait for while loop if else match return break continue as in ref self Self super crate const static async await move dyn where type unsafe extern true false Some None Ok Err')],
  py: ['#.*', `"""(?:.*?)(?:"""|$)|'''(?:.*?)(?:'''|$)|[rbfu]?(?:${STR})`, NUM, words('def class return if elif else for while in not and or is import from as with try except finally raise pass break continue lambda yield global nonlocal None True False async await self')],
  go: ['//.*|/\\*.*?(?:\\*/|$)', `${STR}|\`[^\`]*\`?`, NUM, words('func package import var const type struct interface map chan go defer return if else for range switch case default break continue select nil true false make new len append error string int bool')],
  sh: ['(?:^|\\s)#.*', STR, NUM, words('if then else elif fi for in do done while until case esac function return local export set unset echo exit source')],
  json: [null, STR, `${NUM}|-\\d[\\d.]*`, words('true false null')],
  css: ['/\\*.*?(?:\\*/|$)', STR, '-?\\d[\\d.]*(?:px|em|rem|%|vh|vw|s|ms|deg)?|#[0-9a-fA-F]{3,8}\\b', '@[\\w-]+|[\\w-]+(?=\\s*:[^:])|!important'],
  html: ['<!--.*?(?:-->|$)', STR, null, '</?[\\w:-]+|/?>'],
  md: [null, '`[^`]*`?', null, '^\\s*(?:#{1,6}\\s.*|[-*+]\\s|\\d+[.)]\\s|>)'],
};
const CLASS = ['tk-c', 'tk-s', 'tk-n', 'tk-k'];
const compiled = {};

function regexOf(lang) {
  if (!(lang in compiled)) {
    const parts = RULES[lang].map((r) => `(${r || '(?!)'})`);
    compiled[lang] = new RegExp(parts.join('|'), 'g');
  }
  return compiled[lang];
}

// Fills `node` with `text`, its comments, strings, numbers and keywords in spans (textContent only).
export function paint(node, text, lang) {
  if (!lang || !RULES[lang] || text.length > 2000) { node.textContent = text; return; }
  const re = regexOf(lang);
  re.lastIndex = 0;
  let at = 0;
  let m;
  while ((m = re.exec(text))) {
    if (!m[0]) { re.lastIndex++; continue; }
    const k = [1, 2, 3, 4].find((i) => m[i] !== undefined);
    if (m.index > at) node.append(document.createTextNode(text.slice(at, m.index)));
    node.append(el('span', CLASS[k - 1], m[0]));
    at = m.index + m[0].length;
  }
  if (at < text.length) node.append(document.createTextNode(text.slice(at)));
}
