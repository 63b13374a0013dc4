// Unit tests of the web app's Markdown renderer (assets/markdown.js), under node's own test runner:
//   node --test tests/web/markdown.test.mjs
// (cargo test runs it through tests/web_units.rs). The renderer builds DOM nodes; here a small stand-in for the
// DOM records them and prints them back as HTML, with text escaped, so an assertion shows exactly which elements
// were made and that everything else stayed text.
import { test } from 'node:test';
import assert from 'node:assert/strict';

// ---------- a stand-in for the few DOM calls the renderer makes ----------

const escape = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
// The properties the renderer sets that are attributes in a real DOM, in the order they are printed.
const ATTRS = ['className', 'href', 'target', 'rel', 'start', 'type'];
const NAMES = { className: 'class' };
const VOID = new Set(['br', 'hr']);

class Text {
  constructor(text) { this.text = String(text); }
  get textContent() { return this.text; }
  html() { return escape(this.text); }
}

class Fragment {
  constructor() { this.children = []; }
  append(...nodes) {
    for (const n of nodes) {
      if (n.constructor === Fragment) this.children.push(...n.children.splice(0));
      else this.children.push(typeof n === 'string' ? new Text(n) : n);
    }
  }
  get textContent() { return this.children.map((c) => c.textContent).join(''); }
  set textContent(t) { this.children = [new Text(t)]; }
  html() { return this.children.map((c) => c.html()).join(''); }
}

class Element extends Fragment {
  constructor(tag) { super(); this.tag = tag; this.attrs = {}; this.listeners = {}; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  addEventListener(kind, f) { this.listeners[kind] = f; }
  html() {
    const props = ATTRS.filter((k) => this[k] !== undefined && this[k] !== '')
      .map((k) => [NAMES[k] || k, this[k]]);
    const attrs = [...props, ...Object.entries(this.attrs)].map(([k, v]) => ` ${k}="${escape(String(v))}"`).join('');
    return VOID.has(this.tag) ? `<${this.tag}${attrs}>` : `<${this.tag}${attrs}>${super.html()}</${this.tag}>`;
  }
  // Every element below this one (not itself), depth first.
  *all() {
    for (const c of this.children) if (c instanceof Element) { yield c; yield* c.all(); }
  }
}

globalThis.document = {
  createElement: (tag) => new Element(tag),
  createDocumentFragment: () => new Fragment(),
};

const { markdown, plain } = await import('../../assets/markdown.js');

// The rendered HTML of `src`.
const md = (src) => markdown(src).html();
// The tags of every element `src` renders to.
const tags = (src) => {
  const root = new Element('root');
  root.append(markdown(src));
  return [...root.all()].map((e) => e.tag);
};
// A fenced block's printed form: its bar (language and Copy button) and the code.
const codeBlock = (lang, code) => '<div class="code"><div class="code-bar">'
  + `<span class="code-lang">${lang}</span>`
  + '<button class="copy" type="button" aria-label="Copy code">Copy</button></div>'
  + `<pre><code>${code}</code></pre></div>`;

// ---------- blocks ----------

test('headings sit two levels below the page title, and keep their inline spans', () => {
  assert.equal(md('# Title'), '<h3 class="md-h">Title</h3>');
  assert.equal(md('## Two'), '<h4 class="md-h">Two</h4>');
  assert.equal(md('#### Four'), '<h6 class="md-h">Four</h6>');
  assert.equal(md('###### Six'), '<h6 class="md-h">Six</h6>');
  assert.equal(md('# Closed #'), '<h3 class="md-h">Closed</h3>');
  assert.equal(md('# **Bold** title'), '<h3 class="md-h"><strong>Bold</strong> title</h3>');
  // A hash without a space is not a heading.
  assert.equal(md('#hashtag'), '<p>#hashtag</p>');
});

test('paragraphs break on blank lines, and lines within one are kept apart', () => {
  assert.equal(md('one\ntwo\n\nthree'), '<p>one<br>two</p><p>three</p>');
  assert.equal(md('windows\r\nline ends'), '<p>windows<br>line ends</p>');
  assert.equal(md(''), '');
});

test('a quote and a rule', () => {
  assert.equal(md('> quoted *text*\n> more'), '<blockquote><p>quoted <em>text</em><br>more</p></blockquote>');
  assert.equal(md('a\n\n---\n\nb'), '<p>a</p><hr><p>b</p>');
  assert.equal(md('* * *'), '<hr>');
});

// ---------- inline spans ----------

test('emphasis: bold, italic and strikethrough, with either marker', () => {
  assert.equal(md('**bold** and __bold__'), '<p><strong>bold</strong> and <strong>bold</strong></p>');
  assert.equal(md('*it* and _it_'), '<p><em>it</em> and <em>it</em></p>');
  assert.equal(md('~~gone~~'), '<p><del>gone</del></p>');
  assert.equal(md('**bold _and italic_**'), '<p><strong>bold <em>and italic</em></strong></p>');
  // Underscores inside words and lone stars are text.
  assert.equal(md('snake_case_name'), '<p>snake_case_name</p>');
  assert.equal(md('2 * 3 * 4'), '<p>2 * 3 * 4</p>');
});

test('code spans are literal: no emphasis or links inside them', () => {
  assert.equal(md('run `cargo test`'), '<p>run <code>cargo test</code></p>');
  assert.equal(md('`**not bold**`'), '<p><code>**not bold**</code></p>');
  assert.equal(md('`` a ` tick ``'), '<p><code>a ` tick</code></p>');
  assert.equal(md('`https://example.com`'), '<p><code>https://example.com</code></p>');
});

test('fenced code: the language, the code as typed, and a fence still streaming', () => {
  assert.equal(md('```rust\nfn main() {}\n  **x**\n```'), codeBlock('rust', 'fn main() {}\n  **x**'));
  assert.equal(md('~~~\nplain\n~~~'), codeBlock('code', 'plain'));
  assert.equal(md('before\n```sh\nls\n```\nafter'), `<p>before</p>${codeBlock('sh', 'ls')}<p>after</p>`);
  // A reply that has not closed its fence yet renders as code to the end.
  assert.equal(md('```js\nlet a = 1;\nlet b'), codeBlock('js', 'let a = 1;\nlet b'));
});

// ---------- links ----------

test('links open http and https addresses in a new tab, without the opener', () => {
  assert.equal(md('[the docs](https://example.com/a?b=1)'),
    '<p><a href="https://example.com/a?b=1" target="_blank" rel="noopener noreferrer">the docs</a></p>');
  assert.equal(md('[**bold** label](http://example.com)'),
    '<p><a href="http://example.com/" target="_blank" rel="noopener noreferrer"><strong>bold</strong> label</a></p>');
  // A bare address is a link too, without the punctuation that ends its sentence.
  assert.equal(md('see https://example.com/x.'),
    '<p>see <a href="https://example.com/x" target="_blank" rel="noopener noreferrer">https://example.com/x</a>.</p>');
});

test('any other scheme, or a relative link, stays text', () => {
  for (const href of ["javascript:location='//evil.example'", 'JavaScript:alert%281%29', 'data:text/html,<b>x</b>', 'vbscript:x',
    '/api/logout', 'relative/path', 'file:///etc/passwd']) {
    assert.ok(!tags(`[click](${href})`).includes('a'), href);
    assert.equal(markdown(`[click](${href})`).textContent, 'click', href);
  }
  // mailto: is not a link today either (http and https only).
  assert.deepEqual(tags('[mail me](mailto:me@example.com)'), ['p', 'span']);
});

// ---------- lists ----------

test('bullet lists, with any of the three markers, and items that wrap', () => {
  assert.equal(md('- one\n- **two**'), '<ul><li>one</li><li><strong>two</strong></li></ul>');
  assert.equal(md('* a\n+ b'), '<ul><li>a</li><li>b</li></ul>');
  assert.equal(md('- first line\n  goes on'), '<ul><li>first line goes on</li></ul>');
  assert.equal(md('text\n- item'), '<p>text</p><ul><li>item</li></ul>');
});

test('numbered lists keep their first number', () => {
  assert.equal(md('1. one\n2. two'), '<ol><li>one</li><li>two</li></ol>');
  assert.equal(md('3) three\n4) four'), '<ol start="3"><li>three</li><li>four</li></ol>');
});

test('a deeper item starts a nested list', () => {
  assert.equal(md('- a\n  - a1\n  - a2\n- b'),
    '<ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b</li></ul>');
  assert.equal(md('1. step\n   - detail'), '<ol><li>step<ul><li>detail</li></ul></li></ol>');
});

test('a numbered list right after a bullet list is a list of its own (and the reverse)', () => {
  assert.equal(md('- x\n- y\n1. one\n2. two'), '<ul><li>x</li><li>y</li></ul><ol><li>one</li><li>two</li></ol>');
  assert.equal(md('1. one\n- x'), '<ol><li>one</li></ol><ul><li>x</li></ul>');
});

// ---------- tables ----------

test('tables: a header row, body rows, inline spans in cells, in a scrolling wrapper', () => {
  assert.equal(md('| a | b |\n|---|:-:|\n| `1` | **2** |\n| 3 | 4 |'),
    '<div class="table-wrap"><table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>'
    + '<tr><td><code>1</code></td><td><strong>2</strong></td></tr><tr><td>3</td><td>4</td></tr>'
    + '</tbody></table></div>');
  // Without the outer pipes too; a line with a pipe but no separator under it is a paragraph.
  assert.deepEqual(tags('a | b\n--- | ---\n1 | 2'), ['div', 'table', 'thead', 'tr', 'th', 'th', 'tbody', 'tr', 'td', 'td']);
  assert.equal(md('a | b'), '<p>a | b</p>');
});

// ---------- what must never become markup ----------

test('HTML in the input is text, never elements', () => {
  const attacks = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '<a href="javascript:alert(1)">x</a>',
    '**<b>bold</b>**',
    '- <iframe src="https://evil.example"></iframe>',
    '# <svg onload=alert(1)>',
    '| <x> | y |\n|---|---|\n| <script> | z |',
    '[<img src=x onerror=alert(1)>](https://example.com)',
    '> <style>body{display:none}</style>',
  ];
  const allowed = new Set(['p', 'br', 'strong', 'em', 'del', 'code', 'a', 'span', 'ul', 'ol', 'li', 'h3',
    'blockquote', 'div', 'table', 'thead', 'tbody', 'tr', 'th', 'td']);
  for (const src of attacks) {
    for (const tag of tags(src)) assert.ok(allowed.has(tag), `${src} made a <${tag}>`);
    const out = md(src);
    assert.ok(!/<(script|img|iframe|svg|style|b)\b/i.test(out), `${src} → ${out}`);
  }
  assert.equal(md('<script>alert(1)</script>'), '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>');
  assert.equal(md('```html\n<script>x</script>\n```'), codeBlock('html', '&lt;script&gt;x&lt;/script&gt;'));
});

// ---------- plain text ----------

test('plain: the first line of text without its markdown, for names in the list', () => {
  assert.equal(plain('# **Fix** the `build`\nmore'), 'Fix the build');
  assert.equal(plain('\n\n- first item'), 'first item');
  assert.equal(plain('```\ncode\n```'), 'code');
  assert.equal(plain('> [a link](https://example.com)'), 'a link');
  assert.equal(plain(null), '');
});
