// The service worker: caches the app shell, never API answers.
// Network first (the server sends the shell with no-cache so a new binary's app shows at once); the cache
// is only the fallback that lets the app open while the server is unreachable.
'use strict';

const CACHE = 'ra-shell-v2';
const SHELL = ['/', '/app.js', '/app.css', '/sw.js', '/manifest.webmanifest', '/icon.svg', '/icon-180.png',
  '/icon-512.png'];

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  // Only the shell files, by GET, from this origin. /api/, /pair/, /health and the rest go straight to
  // the network without the worker's involvement, so nothing private or live is ever stored.
  if (ev.request.method !== 'GET' || url.origin !== self.location.origin) return;
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
