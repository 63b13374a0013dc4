// The settings sheet (from the list's bell): notifications on this browser. "Turn on" asks the browser's permission,
// subscribes with the server's key and hands the subscription to the server; the sheet shows this browser's state
// (on, off, blocked, not supported), sends a test, hides message text on the lock screen, and turns it off again.
// app.js loads this module when the bell is first tapped: most visits never open it.

import { api, getJSON } from './api.js';
import { el } from './markdown.js';

// Whether notifications show message text on the lock screen: this browser's choice, sent with its subscription.
const HIDE = 'ra-push-hide';
const hidden = () => localStorage.getItem(HIDE) === '1';

// An iPhone or iPad (iPadOS says "Macintosh" but has touch), and whether the app runs from the Home Screen.
const ios = () => /iPhone|iPad|iPod/.test(navigator.userAgent)
  || (/Macintosh/.test(navigator.userAgent) && navigator.maxTouchPoints > 1);
const installed = () => navigator.standalone === true || matchMedia('(display-mode: standalone)').matches;

// What this browser can do: 'ios' (only the installed app can), 'none' (no push at all), or true.
function support() {
  if (ios() && !installed()) return 'ios';
  if (!('serviceWorker' in navigator) || !('PushManager' in window) || !('Notification' in window)) return 'none';
  return true;
}

async function subscription() {
  const reg = await navigator.serviceWorker.ready;
  return reg.pushManager.getSubscription();
}

// The server's key, base64url, as the bytes subscribe() takes.
function keyBytes(b64) {
  const s = atob(b64.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}
const sameKey = (sub, key) => {
  const have = sub.options && sub.options.applicationServerKey;
  if (!have) return true;
  const a = new Uint8Array(have);
  return a.length === key.length && a.every((b, i) => b === key[i]);
};

// The subscription, told to the server (again: re-posting the same endpoint updates it).
async function register(sub) {
  const { endpoint, keys } = sub.toJSON();
  await api('POST', '/api/push/subscriptions', { endpoint, keys, hide_content: hidden() });
}

// ---------- the sheet ----------

let sheet = null;
let say = null; // the sheet's status line

function build() {
  const d = el('dialog', 'ask sheet');
  d.id = 'settings';
  d.setAttribute('aria-labelledby', 'settings-title');
  const card = el('div', 'ask-card');
  const title = el('h2', null, 'Settings');
  title.id = 'settings-title';
  const body = el('div', 'sheet-body');
  body.id = 'settings-body';
  say = el('p', 'sheet-said');
  say.id = 'settings-said';
  say.setAttribute('role', 'status');
  const close = el('button', 'text', 'Close');
  close.type = 'button';
  close.id = 'settings-close';
  close.addEventListener('click', () => d.close());
  const buttons = el('div', 'ask-buttons');
  buttons.append(close);
  card.append(title, el('h3', null, 'Notifications'), body, say, buttons);
  d.append(card);
  // A tap on the backdrop closes it.
  d.addEventListener('click', (e) => { if (e.target === d) d.close(); });
  document.body.append(d);
  return d;
}

export async function openSettings() {
  sheet = sheet || build();
  say.textContent = '';
  if (!sheet.open) sheet.showModal();
  await render();
  // Already on: the server hears of it again, in case it forgot (a sign-out removes a browser's subscriptions).
  if (state === 'on') register(current).catch(() => {});
}

let state = null; // 'on' | 'off' | 'blocked' | 'ios' | 'none'
let current = null; // this browser's subscription, when on

async function render() {
  const box = document.getElementById('settings-body');
  const s = support();
  current = null;
  if (s !== true) state = s;
  else if (Notification.permission === 'denied') state = 'blocked';
  else {
    try { current = await subscription(); } catch { current = null; }
    state = current && Notification.permission === 'granted' ? 'on' : 'off';
  }
  box.dataset.state = state;
  const line = (cls, text) => el('p', cls, text);
  const parts = [];
  if (state === 'ios') {
    parts.push(line('sheet-state', 'Notifications work only in the installed app.'),
      line(null, 'In Safari, tap Share, then “Add to Home Screen”. Open remote-agent from the Home Screen, '
        + 'sign in, and turn notifications on here.'));
  } else if (state === 'none') {
    parts.push(line('sheet-state', 'Not supported'),
      line(null, ios() ? 'Notifications from a web app need iOS 16.4 or later.'
        : 'This browser cannot receive notifications from a web app.'));
  } else if (state === 'blocked') {
    parts.push(line('sheet-state', 'Blocked'),
      line(null, 'Notifications are blocked for this site. Allow them in the browser’s settings for this site, '
        + 'then come back here.'));
  } else if (state === 'off') {
    parts.push(line('sheet-state', 'Off on this device'),
      line(null, 'Get a notification when Claude needs you or a reply is ready, with the app closed.'),
      button('Turn on notifications', 'primary', 'push-on', turnOn));
  } else {
    parts.push(line('sheet-state', 'On for this device'), hideToggle(),
      button('Send a test', null, 'push-test', sendTest),
      button('Turn off', 'text', 'push-off', turnOff));
  }
  box.replaceChildren(...parts);
}

function button(text, cls, id, run) {
  const b = el('button', cls, text);
  b.type = 'button';
  b.id = id;
  b.addEventListener('click', async () => {
    b.disabled = true;
    say.textContent = '';
    try { await run(); } catch (e) { say.textContent = e.message || String(e); } finally { b.disabled = false; }
  });
  return b;
}

function hideToggle() {
  const label = el('label', 'sheet-check');
  const box = el('input');
  box.type = 'checkbox';
  box.id = 'push-hide';
  box.checked = hidden();
  box.addEventListener('change', async () => {
    localStorage.setItem(HIDE, box.checked ? '1' : '0');
    box.disabled = true;
    say.textContent = '';
    try {
      await register(current);
      say.textContent = box.checked ? 'Notifications will not show message text.' : 'Notifications show message text.';
    } catch (e) {
      say.textContent = `Could not save: ${e.message}`;
    } finally { box.disabled = false; }
  });
  label.append(box, el('span', null, 'Hide message text on the lock screen'));
  return label;
}

// One tap: the permission first (iOS asks only from the tap itself), then the subscription, then the server.
async function turnOn() {
  const perm = await Notification.requestPermission();
  if (perm !== 'granted') {
    await render();
    say.textContent = perm === 'denied' ? 'Notifications were not allowed.' : 'Notifications were not turned on.';
    return;
  }
  const reg = await navigator.serviceWorker.ready;
  const { key } = await getJSON('/api/push/key');
  const bytes = keyBytes(key);
  let sub = await reg.pushManager.getSubscription();
  // One made under another key (a new data directory) is of no use to this server.
  if (sub && !sameKey(sub, bytes)) { await sub.unsubscribe(); sub = null; }
  try {
    sub = sub || await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes });
  } catch (e) {
    throw new Error(`The browser could not subscribe: ${e.message}`);
  }
  await register(sub);
  await render();
  say.textContent = 'Notifications are on. Send a test to see one.';
}

async function sendTest() {
  const sub = await subscription();
  if (!sub) { await render(); return; }
  try {
    await api('POST', '/api/push/test', { endpoint: sub.endpoint });
  } catch (e) {
    if (e.status !== 404) throw e;
    // The server forgot this browser (signed out meanwhile): tell it again, and send.
    await register(sub);
    await api('POST', '/api/push/test', { endpoint: sub.endpoint });
  }
  say.textContent = 'Sent. It should arrive in a few seconds.';
}

async function turnOff() {
  const sub = await subscription();
  if (sub) {
    await api('DELETE', '/api/push/subscriptions', { endpoint: sub.endpoint });
    await sub.unsubscribe();
  }
  await render();
  say.textContent = 'Notifications are off on this device.';
}
