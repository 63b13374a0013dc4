// Markdown, rendered to DOM nodes and never to HTML strings: what Claude and its tools write only ever reaches the
// page through text nodes and the few elements made here, so no input can inject markup or script. Headings,
// paragraphs, emphasis, code spans and fenced code (with a Copy button), links (http and https only), bullet and
// numbered lists, tables, quotes and rules; anything else stays text.
//
// It needs only `document.createElement`, `createDocumentFragment` and `URL`, so tests/web/markdown.test.mjs runs it
// under node with a small stand-in for the DOM.

// The one way the app makes an element: a tag, a class and text (set as text, never parsed).
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// The first non-empty line of markdown, without its syntax (a conversation's name in the list and the header).
export function plain(md) {
  const line = String(md || '').split('\n').find((l) => l.trim() && !/^\s*(`{3,}|~{3,})/.test(l)) || '';
  const span = el('span');
  inline(span, line.replace(/^\s*(#{1,6}\s+|>\s?|[-*+]\s+|\d+[.)]\s+)/, '').trim());
  return span.textContent;
}

// A document fragment of the rendered text; called again on each repaint while a reply streams, so a fence not yet
// closed renders as code up to the end.
export function markdown(src) {
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
