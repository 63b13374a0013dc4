// The service worker: caches the app shell, and a copy of the last conversation list and open transcript.
// Network first (the server sends the shell with no-cache so a new binary's app shows at once); the cache
// is only the fallback that lets the app open while the server is unreachable.
'use strict';

// v3: the app became ES modules; an offline load must not mix the old app.js with the new page. v4: requests.js.
// v5: push.js. v7: projects.js, computer.js. v8: attach.js, then changes.js. v9: both.
const CACHE = 'ra-shell-v9';
// The signed-in user's list and transcript, kept so that a reload while offline shows them. This is the user's own
// browser; the app deletes it on sign-out, and so does a 401 here.
const API = 'ra-api';
const SHELL = ['/', '/app.js', '/compose.js', '/requests.js', '/push.js', '/export.js', '/continue.js', '/attach.js', '/projects.js', '/computer.js', '/changes.js', '/turn.js', '/markdown.js', '/api.js', '/app.css', '/sw.js',
  '/manifest.webmanifest', '/icon.svg', '/icon-180.png', '/icon-512.png'];
// GET /api/conversations and GET /api/conversations/{id} (its latest page: no query).
const KEPT = /^\/api\/conversations(\/[A-Za-z0-9_-]{1,64})?$/;

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE && k !== API).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  // The shell files and the two answers above, by GET, from this origin. Everything else (other API calls,
  // event streams, /pair/, /health) goes straight to the network without the worker's involvement.
  if (url.origin !== self.location.origin) return;
  // A deleted conversation leaves no copy behind.
  if (ev.request.method === 'DELETE' && KEPT.test(url.pathname)) {
    ev.waitUntil(caches.open(API).then((c) => c.delete(url.pathname)));
    return;
  }
  if (ev.request.method !== 'GET') return;
  if (KEPT.test(url.pathname) && !url.search) {
    ev.respondWith(kept(ev, url.pathname));
    return;
  }
  const path = ev.request.mode === 'navigate' && url.pathname === '/' ? '/' : url.pathname;
  if (!SHELL.includes(path)) return;
  ev.respondWith(fetch(ev.request).then((res) => {
    if (res.ok && res.type === 'basic') {
      const copy = res.clone();
      ev.waitUntil(caches.open(CACHE).then((c) => c.put(path, copy)));
    }
    return res;
  }).catch(() => caches.match(path).then((hit) => hit || Response.error())));
});

// The network's answer, copied; unreachable, the copy marked X-RA-Cached (the app then says it is offline), with
// X-RA-Saved saying when it was saved (the app shows "saved copy from 14:05").
async function kept(ev, path) {
  let res;
  try {
    res = await fetch(ev.request);
  } catch {
    const hit = await caches.open(API).then((c) => c.match(path));
    if (!hit) return Response.error();
    const headers = new Headers(hit.headers);
    headers.set('X-RA-Cached', '1');
    return new Response(hit.body, { status: hit.status, headers });
  }
  if (res.status === 401) ev.waitUntil(caches.delete(API));
  else if (res.ok && res.type === 'basic') ev.waitUntil(save(path, res.clone()));
  return res;
}

async function save(path, res) {
  const headers = new Headers(res.headers);
  headers.set('X-RA-Saved', new Date().toISOString());
  const copy = new Response(await res.blob(), { status: res.status, headers });
  await caches.open(API).then((c) => c.put(path, copy));
}

// ---------- notifications (docs/api.md, "Push": the payload) ----------

// A push: the server's JSON {kind, title, body, url, tag, conversation_id?, request_id?, actions?}. Shown unless a
// window of the app shows that very conversation, focused and visible (the server already holds back notices for a
// conversation someone has on screen; this is the second line).
self.addEventListener('push', (ev) => {
  let data;
  try { data = ev.data ? ev.data.json() : null; } catch { data = null; }
  ev.waitUntil(pushed(data));
});

async function pushed(data) {
  const d = data && typeof data === 'object' ? data : { title: 'remote-agent', body: '', url: '/' };
  if (d.conversation_id && await onScreen(d.conversation_id)) return;
  const actions = (Array.isArray(d.actions) ? d.actions : [])
    .filter((a) => a === 'allow' || a === 'deny')
    .map((a) => ({ action: a, title: a === 'allow' ? 'Allow' : 'Deny' }));
  await self.registration.showNotification(String(d.title || 'remote-agent'), {
    body: String(d.body || ''),
    tag: d.tag ? String(d.tag) : undefined,
    // A new request under the same tag rings again; a turn's end replaces the last one quietly.
    renotify: !!d.tag && d.kind === 'request',
    icon: '/icon-180.png',
    data: d,
    actions,
  });
}

// The conversation each window of the app has on screen, as the app says ({present: id or null}). Lost when the
// browser stops this worker: then a notification shows, which is the safe side.
const present = new Map();
self.addEventListener('message', (ev) => {
  if (ev.source && ev.data && typeof ev.data === 'object' && 'present' in ev.data) {
    present.set(ev.source.id, ev.data.present == null ? null : String(ev.data.present));
  }
});

// Whether a focused, visible window of the app has conversation `id` on screen.
async function onScreen(id) {
  const wins = await self.clients.matchAll({ type: 'window' });
  return wins.some((w) => w.focused && w.visibilityState === 'visible' && present.get(w.id) === String(id));
}

self.addEventListener('notificationclick', (ev) => {
  ev.waitUntil(clicked(ev.notification, ev.action));
});

// Allow or Deny from the notification answers the request with this browser's sign-in cookie; a failed answer
// (already answered, expired, signed out) opens the conversation instead, where the app says what became of it.
// Anything else opens the notification's page: in a window of the app if one is open, else a new one.
async function clicked(notification, action) {
  notification.close();
  const d = notification.data || {};
  const url = new URL(d.url || '/', self.location.origin).href;
  if ((action === 'allow' || action === 'deny') && d.request_id) {
    try {
      const res = await fetch(`/api/requests/${encodeURIComponent(d.request_id)}`, {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'remote-agent' },
        body: JSON.stringify({ decision: action }),
      });
      if (res.ok) return;
    } catch { /* unreachable: open it instead */ }
  }
  return openPage(url);
}

async function openPage(url) {
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const same = new URL(url).origin === self.location.origin;
  const win = same && (wins.find((w) => w.focused) || wins[0]);
  if (win) {
    try { await win.focus(); } catch { /* focusing needs the click's activation; navigating does not */ }
    try { if (await win.navigate(url)) return; } catch { /* not ours to navigate: a new window */ }
  }
  await self.clients.openWindow(url);
}
