// The service worker: caches the app shell, and a copy of the last conversation list and open transcript.
// Network first (the server sends the shell with no-cache so a new binary's app shows at once); the cache
// is only the fallback that lets the app open while the server is unreachable.
'use strict';

// v3: the app became ES modules; an offline load must not mix the old app.js with the new page. v4: requests.js.
const CACHE = 'ra-shell-v4';
// The signed-in user's list and transcript, kept so that a reload while offline shows them. This is the user's own
// browser; the app deletes it on sign-out, and so does a 401 here.
const API = 'ra-api';
const SHELL = ['/', '/app.js', '/compose.js', '/requests.js', '/turn.js', '/markdown.js', '/api.js', '/app.css', '/sw.js',
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
