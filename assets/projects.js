// The project picker, imported when "+" is first tapped on a server with project roots: a sheet with a search box,
// the allowed and recent projects (GET /api/projects), and "Browse" per root that walks its directories
// (GET /api/projects/browse) down to one where "Start here" opens a new conversation. The server lists nothing
// outside the roots and the allowed projects, and checks the choice again when the conversation is created.

import { getJSON } from './api.js';
import { el } from './markdown.js';

let sheet = null;
let chosen = null; // what a pick calls, with the directory's path
let searchGen = 0; // the latest search: an older answer arriving late is dropped
let roots = [];

function row(cls, name, path, git) {
  const b = el('button', `proj-row ${cls}`);
  b.type = 'button';
  const head = el('span', 'proj-head');
  head.append(el('span', 'proj-name', name));
  if (git) head.append(el('span', 'proj-git', 'git'));
  b.append(head);
  if (path) b.append(el('span', 'proj-path', path));
  return b;
}

function build() {
  const d = el('dialog', 'ask sheet proj-sheet');
  d.id = 'projects';
  d.setAttribute('aria-labelledby', 'projects-title');
  const card = el('div', 'ask-card');
  const title = el('h2', null, 'New conversation in…');
  title.id = 'projects-title';
  // The dialog focuses the title, not the search box: on a phone that would open the keyboard over the list.
  title.tabIndex = -1;
  title.autofocus = true;
  const q = el('input');
  q.id = 'projects-q';
  q.type = 'search';
  q.placeholder = 'Search projects';
  q.setAttribute('aria-label', 'Search projects');
  q.autocomplete = 'off';
  q.autocapitalize = 'none';
  q.spellcheck = false;
  let timer = null;
  q.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => showRecent(q.value.trim()), 150);
  });
  const body = el('div', 'proj-body');
  body.id = 'projects-body';
  const said = el('p', 'sheet-said');
  said.id = 'projects-said';
  said.setAttribute('role', 'status');
  const close = el('button', 'text', 'Cancel');
  close.type = 'button';
  close.id = 'projects-close';
  close.addEventListener('click', () => d.close());
  const buttons = el('div', 'ask-buttons');
  buttons.append(close);
  card.append(title, q, body, said, buttons);
  d.append(card);
  d.addEventListener('click', (e) => { if (e.target === d) d.close(); });
  document.body.append(d);
  return d;
}

const $ = (id) => document.getElementById(id);
const say = (text) => { $('projects-said').textContent = text || ''; };

function pick(path) {
  sheet.close();
  if (chosen) chosen(path);
}

// The search box's view: the projects that match, then "Browse" per root.
async function showRecent(q = '') {
  const gen = ++searchGen;
  $('projects-q').hidden = false;
  let found;
  try {
    found = await getJSON(`/api/projects${q ? `?q=${encodeURIComponent(q)}` : ''}`);
  } catch (e) {
    if (gen === searchGen) say(`Could not list the projects: ${e.message}`);
    return;
  }
  if (gen !== searchGen) return;
  say('');
  roots = found.roots || [];
  const body = $('projects-body');
  const list = el('div', 'proj-list');
  list.setAttribute('role', 'list');
  for (const p of found.projects) {
    const b = row('proj-project', p.name, p.path, p.git);
    b.setAttribute('role', 'listitem');
    b.addEventListener('click', () => pick(p.path));
    list.append(b);
  }
  if (!found.projects.length) list.append(el('p', 'proj-empty', q ? 'No project matches.' : 'No projects yet.'));
  const parts = [el('h3', null, q ? 'Projects' : 'Recent projects'), list];
  if (roots.length) {
    parts.push(el('h3', null, 'Browse'));
    const browse = el('div', 'proj-list');
    for (const r of roots) {
      const b = row('proj-root', `Browse ${r.name}`, r.path, false);
      b.addEventListener('click', () => showDir(r.path));
      browse.append(b);
    }
    parts.push(browse);
  }
  body.replaceChildren(...parts);
}

// The breadcrumb from the root that holds `path` down to it, each step a button that goes there.
function crumbs(path) {
  const root = roots.map((r) => r.path).filter((r) => path === r || path.startsWith(`${r}/`))
    .sort((a, b) => b.length - a.length)[0];
  const nav = el('nav', 'proj-crumbs');
  nav.setAttribute('aria-label', 'Where you are');
  if (!root) { nav.append(el('span', 'proj-crumb-here', path)); return nav; }
  const steps = [[root.split('/').filter(Boolean).pop() || root, root]];
  let at = root;
  for (const part of path.slice(root.length).split('/').filter(Boolean)) {
    at = `${at}/${part}`;
    steps.push([part, at]);
  }
  steps.forEach(([name, target], i) => {
    if (i) nav.append(el('span', 'proj-sep', '›'));
    if (i === steps.length - 1) { nav.append(el('span', 'proj-crumb-here', name)); return; }
    const b = el('button', 'text proj-crumb', name);
    b.type = 'button';
    b.addEventListener('click', () => showDir(target));
    nav.append(b);
  });
  return nav;
}

// One directory inside a root: up, the breadcrumb, "Start here", and its subdirectories.
async function showDir(path) {
  searchGen++;
  let dir;
  try {
    dir = await getJSON(`/api/projects/browse?path=${encodeURIComponent(path)}`);
  } catch (e) {
    say(`Could not open ${path}: ${e.message}`);
    return;
  }
  say('');
  $('projects-q').hidden = true;
  const bar = el('div', 'proj-bar');
  const up = el('button', 'proj-up', '‹ Up');
  up.type = 'button';
  up.id = 'projects-up';
  up.setAttribute('aria-label', dir.parent ? 'Up one directory' : 'Back to the projects');
  up.addEventListener('click', () => (dir.parent ? showDir(dir.parent) : showRecent($('projects-q').value.trim())));
  const start = el('button', 'primary proj-start', 'Start here');
  start.type = 'button';
  start.id = 'projects-start';
  start.addEventListener('click', () => pick(dir.path));
  bar.append(up, start);
  const list = el('div', 'proj-list');
  list.setAttribute('role', 'list');
  for (const d of dir.dirs) {
    const b = row('proj-dir', d.name, null, d.git);
    b.setAttribute('role', 'listitem');
    b.title = d.path;
    b.append(el('span', 'proj-open', '›'));
    b.addEventListener('click', () => showDir(d.path));
    list.append(b);
  }
  if (!dir.dirs.length) list.append(el('p', 'proj-empty', 'No folders in here.'));
  if (dir.truncated) list.append(el('p', 'proj-empty', 'Only the first 500 folders are shown.'));
  $('projects-body').replaceChildren(crumbs(dir.path), bar, list);
  $('projects-body').scrollTop = 0;
}

/** Opens the picker; `onPick(path)` is called with the directory chosen. */
export function openPicker(onPick) {
  chosen = onPick;
  sheet = sheet || build();
  $('projects-q').value = '';
  say('');
  $('projects-body').replaceChildren();
  showRecent('');
  if (typeof sheet.showModal === 'function') sheet.showModal();
  else sheet.setAttribute('open', '');
}
