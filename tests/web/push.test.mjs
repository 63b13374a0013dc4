// Browser test of notifications, at a phone's size against the real server (run with
// REMOTE_AGENT_PUSH_ALLOW_LOOPBACK=1) and the fake claude: the settings sheet from the list's bell (off, "Turn on
// notifications", on, "Send a test", "Hide message text on the lock screen", "Turn off"), what an iPhone's Safari
// is told, presence, and the service worker's push and notificationclick.
//
// Headless Chromium reaches no real push service (its own subscribe() fails), so the page's PushManager is swapped
// for one that hands out a subscription of the mock push service below: the server encrypts to it as to any, the
// mock decrypts (RFC 8291), and each payload reaches the real service worker through DevTools'
// ServiceWorker.deliverPushMessage: the `push` handler shows the notification (read back with getNotifications()).
// A notification cannot be clicked from here: the test calls the worker's own click handler, `clicked(notification,
// action)`, in the worker, as its `notificationclick` listener does.
//   RA_URL=… RA_USER=… RA_PASS=… RA_PROJECT=<the server's project dir> RA_SHOTS=<dir> node tests/web/push.test.mjs
import { createDecipheriv, createECDH, hkdfSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { launch, phonePage, serverFromEnv, check, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();
const PROJECT = process.env.RA_PROJECT;
if (!PROJECT) {
  console.error('set RA_PROJECT (the server\'s project directory)');
  process.exit(2);
}
console.log(`screenshots in ${SHOTS}`);

const started = Date.now();
const step = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const b64u = (buf) => Buffer.from(buf).toString('base64url');

/** Polls `f` until it returns something truthy; throws `what` after `ms`. */
async function until(f, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => { setTimeout(r, 100); });
  }
}

// ---------- a mock push service ----------

// One subscription (a browser's keys), and the payloads the server sent to it, decrypted.
const ua = createECDH('prime256v1');
ua.generateKeys();
const authSecret = randomBytes(16);
const got = []; // {payload, headers}
const refused = [];

// RFC 8291 over RFC 8188 aes128gcm, one record: salt(16) rs(4) idlen(1) keyid(the sender's public key) ciphertext.
function decrypt(body) {
  const salt = body.subarray(0, 16);
  const idlen = body[20];
  const asPublic = body.subarray(21, 21 + idlen);
  const ct = body.subarray(21 + idlen);
  const info = Buffer.concat([Buffer.from('WebPush: info\0'), ua.getPublicKey(), asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ua.computeSecret(asPublic), authSecret, info, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const d = createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(ct.subarray(ct.length - 16));
  const pt = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
  let end = pt.length;
  while (end > 0 && pt[end - 1] === 0) end--;
  if (pt[end - 1] !== 2) throw new Error('no last-record delimiter');
  return JSON.parse(pt.subarray(0, end - 1).toString());
}

const mock = createServer((req, res) => {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    try {
      check(req.method === 'POST' && new URL(req.url, 'http://x').pathname === '/push/phone', `${req.method} ${req.url}`);
      check(/^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/.test(req.headers.authorization || ''), 'no VAPID Authorization');
      check(req.headers['content-encoding'] === 'aes128gcm', 'not aes128gcm');
      check(/^\d+$/.test(req.headers.ttl || ''), 'no TTL');
      got.push({ payload: decrypt(Buffer.concat(parts)), headers: req.headers });
      res.writeHead(201, { Location: '/m/1' }).end();
    } catch (e) {
      refused.push(String(e.message || e));
      res.writeHead(400).end();
    }
  });
});
await new Promise((r) => { mock.listen(0, '127.0.0.1', r); });
const subscriptionJson = {
  endpoint: `http://127.0.0.1:${mock.address().port}/push/phone`,
  expirationTime: null,
  keys: { p256dh: b64u(ua.getPublicKey()), auth: b64u(authSecret) },
};
// The next payload matching `pred`, not yet taken.
const taken = new Set();
const pushed = (pred, what) => until(() => {
  const m = got.find((g) => !taken.has(g) && pred(g.payload));
  if (m) taken.add(m);
  return m && m.payload;
}, `the server pushes ${what} (got ${JSON.stringify(got.map((g) => g.payload.kind))}, refused ${refused})`);

// ---------- the server's API, with HTTP Basic, as another device ----------

const basic = `Basic ${Buffer.from(`${RA_USER}:${RA_PASS}`).toString('base64')}`;
async function call(method, path, body) {
  const r = await fetch(RA_URL + path, {
    method, headers: { Authorization: basic, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(r.ok, `${method} ${path}: ${r.status}`);
  return r.status === 204 ? null : r.json();
}
async function pendingRequest(convId) {
  return until(async () => (await call('GET', '/api/requests')).requests.find((r) => r.conversation_id === convId),
    'a pending request');
}

// ---------- the browser ----------

const browser = await launch();

// A PushManager that subscribes to the mock (kept in localStorage, as a browser keeps its subscription), recording
// the key it was given.
function fakePush(sub) {
  const KEY = 'ra-test-subscription';
  const make = (json) => ({
    endpoint: json.endpoint,
    options: { userVisibleOnly: true, applicationServerKey: null },
    toJSON: () => json,
    unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
  });
  PushManager.prototype.subscribe = async function subscribe(opts) {
    const key = new Uint8Array(opts.applicationServerKey);
    localStorage.setItem('ra-test-key', btoa(String.fromCharCode(...key)).replace(/\+/g, '-').replace(/\//g, '_')
      .replace(/=+$/, ''));
    localStorage.setItem(KEY, JSON.stringify(sub));
    return make(sub);
  };
  PushManager.prototype.getSubscription = async function getSubscription() {
    const json = localStorage.getItem(KEY);
    return json ? make(JSON.parse(json)) : null;
  };
}

async function openSheet(page) {
  if (await page.locator('#back').isVisible()) await page.click('#back');
  await page.click('#settings-open');
  await page.locator('#settings[open]').waitFor();
}
const sheetState = (page) => page.locator('#settings-body').getAttribute('data-state');

// The sheet's buttons are touch-sized and it fits the screen, without sideways scrolling.
async function checkSheet(page) {
  const r = await page.locator('#settings').evaluate((d) => {
    const box = d.getBoundingClientRect();
    const small = [...d.querySelectorAll('button, label.sheet-check')].filter((b) => b.getClientRects().length)
      .filter((b) => b.getBoundingClientRect().height < 44).map((b) => b.textContent);
    return { small, inside: box.top >= 0 && box.bottom <= innerHeight + 1 && box.left >= 0 && box.right <= innerWidth + 1,
      sideways: d.scrollWidth > d.clientWidth + 1 };
  });
  check(!r.small.length, `sheet controls under 44 px: ${r.small.join(', ')}`);
  check(r.inside, 'the settings sheet does not fit the screen');
  check(!r.sideways, 'the settings sheet scrolls sideways');
}

async function main() {
  // 1. An iPhone's Safari, not installed: push works only in the installed app, and how to install it.
  {
    const { context, page, errors } = await phonePage(browser, {}, () => false, {
      userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) '
        + 'Version/18.1 Mobile/15E148 Safari/604.1',
    });
    await signIn(page, { RA_URL, RA_USER, RA_PASS });
    await openSheet(page);
    check(await sheetState(page) === 'ios', `an iPhone's Safari shows state ${await sheetState(page)}`);
    const text = await page.locator('#settings-body').innerText();
    check(/installed app/.test(text) && /Share/.test(text) && /Add to Home Screen/.test(text),
      `the iPhone is not told how to install: ${text}`);
    check(!(await page.locator('#push-on').count()), 'an iPhone\'s Safari is offered "Turn on"');
    await checkSheet(page);
    await page.screenshot({ path: join(SHOTS, 'push-00-iphone.png') });
    check(!errors.length, errors.join('\n'));
    await context.close();
    step('an iPhone\'s Safari is told to add the app to the Home Screen');
  }

  // 2. A browser that refuses the permission (headless Chromium does, unasked): "Turn on" ends in "blocked", said
  //    plainly, with where to allow it.
  {
    const { context, page, errors } = await phonePage(browser, {}, () => false);
    await signIn(page, { RA_URL, RA_USER, RA_PASS });
    await openSheet(page);
    check(await sheetState(page) === 'off', `a new browser shows state ${await sheetState(page)}`);
    await page.click('#push-on');
    await until(async () => await sheetState(page) === 'blocked', 'the sheet says "blocked"');
    await page.locator('#settings-said', { hasText: 'not allowed' }).waitFor();
    check(/settings/.test(await page.locator('#settings-body').innerText()), 'blocked, without where to allow it');
    await checkSheet(page);
    await page.screenshot({ path: join(SHOTS, 'push-00-blocked.png') });
    check(!errors.length, errors.join('\n'));
    await context.close();
    step('permission refused: "blocked", and where to allow it');
  }

  const { context, page, errors } = await phonePage(browser, {}, () => false);
  await context.grantPermissions(['notifications'], { origin: RA_URL });
  await context.addInitScript(fakePush, subscriptionJson);
  const presence = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/presence') presence.push(r.postDataJSON().conversation_id);
  });
  await signIn(page, { RA_URL, RA_USER, RA_PASS });

  // 3. The sheet: off; one tap turns it on (the server's key, the subscription posted); on.
  await openSheet(page);
  check(await sheetState(page) === 'off', `a new browser shows state ${await sheetState(page)}`);
  await checkSheet(page);
  await page.screenshot({ path: join(SHOTS, 'push-01-off.png') });
  const posted = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/api/push/subscriptions'));
  await page.click('#push-on');
  const body = (await posted).postDataJSON();
  check(body.endpoint === subscriptionJson.endpoint && body.keys.p256dh === subscriptionJson.keys.p256dh
    && body.keys.auth === subscriptionJson.keys.auth, `the subscription posted: ${JSON.stringify(body)}`);
  await until(async () => await sheetState(page) === 'on', 'the sheet says "on"');
  const { key } = await call('GET', '/api/push/key');
  check(await page.evaluate(() => localStorage.getItem('ra-test-key')) === key, 'subscribed with another key');
  await checkSheet(page);
  await page.screenshot({ path: join(SHOTS, 'push-02-on.png') });
  step('turned on: subscribed with the server\'s key, the server has it');

  // 4. "Send a test": the server pushes it, the worker shows it.
  const cdp = await context.newCDPSession(page);
  const regs = [];
  cdp.on('ServiceWorker.workerRegistrationUpdated', (e) => regs.push(...e.registrations));
  await cdp.send('ServiceWorker.enable');
  const reg = await until(() => regs.find((r) => !r.isDeleted), 'the service worker\'s registration');
  const sw = await until(() => context.serviceWorkers()[0], 'the service worker');
  const deliver = (payload) => cdp.send('ServiceWorker.deliverPushMessage',
    { origin: new URL(RA_URL).origin, registrationId: reg.registrationId, data: JSON.stringify(payload) });
  const shown = (tag, ms) => until(() => sw.evaluate(async (t) => {
    const [n] = await self.registration.getNotifications({ tag: t });
    return n && { title: n.title, body: n.body, actions: n.actions.map((a) => a.action), data: n.data };
  }, tag), `the notification ${tag}`, ms);
  // DevTools' delivery is fire-and-forget and now and then lands while the worker is being started, and is dropped
  // (a real push service retries too): deliver again until the notification shows.
  const deliverShown = async (payload, tag) => {
    const deadline = Date.now() + 15000;
    for (;;) {
      await deliver(payload).catch(() => {});
      try {
        return await shown(tag, 2500);
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
  };

  await page.click('#push-test');
  await page.locator('#settings-said', { hasText: 'Sent' }).waitFor();
  const test = await pushed((p) => p.kind === 'test', 'the test');
  const n0 = await deliverShown(test, 'test');
  check(n0.title === 'remote-agent' && n0.body === 'Notifications work.', `the test notification: ${JSON.stringify(n0)}`);
  step('"Send a test": pushed by the server, shown by the worker');

  // 5. Hiding message text re-posts the subscription with hide_content.
  for (const want of [true, false]) {
    const again = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/api/push/subscriptions'));
    await page.click('#push-hide');
    check((await again).postDataJSON().hide_content === want, `hide_content is not ${want}`);
    await page.locator('#settings-said', { hasText: want ? /will not show/ : /^Notifications show/ }).waitFor();
  }
  step('"Hide message text" re-posts the subscription');
  await page.click('#settings-close');

  // 6. Claude asks in a conversation not on screen (started from another device): the notification has Allow and
  //    Deny, and Allow answers it (the command runs).
  check(await page.locator('#list-view').isVisible(), 'the list is not on screen');
  const conv = await call('POST', '/api/conversations', {});
  await call('POST', `/api/conversations/${conv.id}/messages`, { message: '[[bash:touch pushed.txt]]' });
  const req = await pendingRequest(conv.id);
  const asked = await pushed((p) => p.kind === 'request' && p.request_id === req.id, 'the request');
  check(asked.url === `/?c=${conv.id}&r=${req.id}`, `the request's url: ${asked.url}`);
  const n1 = await deliverShown(asked, `request-${req.id}`);
  check(n1.actions.join() === 'allow,deny', `the request's actions: ${n1.actions}`);
  check(/Claude needs you/.test(n1.title) && n1.body.includes('touch pushed.txt'), `the request notification: ${n1.title} / ${n1.body}`);
  await sw.evaluate(async (tag) => {
    const [n] = await self.registration.getNotifications({ tag });
    await clicked(n, 'allow'); // eslint-disable-line no-undef
  }, `request-${req.id}`);
  await until(() => existsSync(join(PROJECT, 'pushed.txt')), 'the allowed command runs');
  check(!(await sw.evaluate(async (tag) => (await self.registration.getNotifications({ tag })).length, `request-${req.id}`)),
    'the notification stays after its answer');
  step('a request\'s notification: Allow answers it, the command ran');

  // 7. The turn ends: its notification opens the conversation (?c=), and the app tells the server it is there.
  const ended = await pushed((p) => p.kind === 'turn' && p.conversation_id === conv.id, 'the turn\'s end');
  check(ended.url === `/?c=${conv.id}`, `the turn's url: ${ended.url}`);
  await deliverShown(ended, `turn-${conv.id}`);
  const navigated = page.waitForEvent('framenavigated', (f) => f.url().includes(`?c=${conv.id}`));
  await sw.evaluate(async (tag) => {
    const [n] = await self.registration.getNotifications({ tag });
    await clicked(n, ''); // eslint-disable-line no-undef
  }, `turn-${conv.id}`);
  await navigated;
  await page.locator('#chat-title', { hasText: 'touch pushed.txt' }).waitFor();
  check(await page.locator('#chat-view').isVisible(), 'the conversation is not on screen');
  check(new URL(page.url()).search === '', `the address keeps ${page.url()}`);
  await until(() => presence.includes(conv.id), `the app tells the server it is in the conversation (${presence})`);
  step('the turn\'s notification opens its conversation; presence posted');

  // 8. Leaving it for the list says so; a hidden page too.
  await page.click('#back');
  await until(() => presence.at(-1) === null, `leaving the conversation posts null (${presence})`);
  await page.locator('#conv-list .conv').first().click();
  await until(() => presence.at(-1) === conv.id, `back in the conversation (${presence})`);
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until(() => presence.at(-1) === null, `a hidden page posts null (${presence})`);
  await page.evaluate(() => {
    delete document.visibilityState;
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until(() => presence.at(-1) === conv.id, `visible again (${presence})`);
  step('presence follows the conversation on screen and the page\'s visibility');

  // 9. The worker shows nothing about the conversation a focused window has on screen (the second line behind the
  //    server's presence), but does about another.
  await deliver({ ...ended, tag: 'on-screen' });
  await deliverShown({ ...test, tag: 'elsewhere' }, 'elsewhere');
  check(!(await sw.evaluate(async () => (await self.registration.getNotifications({ tag: 'on-screen' })).length)),
    'a notification about the conversation on screen');
  step('nothing shown about the conversation on screen');

  // 10. A request's notification tapped (not its buttons): the conversation opens with that card brought into view.
  await page.click('#back');
  await until(() => presence.at(-1) === null, 'left for the list');
  await call('POST', `/api/conversations/${conv.id}/messages`, { message: '[[bash:touch later.txt]]' });
  const req2 = await pendingRequest(conv.id);
  const asked2 = await pushed((p) => p.kind === 'request' && p.request_id === req2.id, 'the second request');
  await deliverShown(asked2, `request-${req2.id}`);
  const navigated2 = page.waitForEvent('framenavigated', (f) => f.url().includes(`&r=${req2.id}`));
  await sw.evaluate(async (tag) => {
    const [n] = await self.registration.getNotifications({ tag });
    await clicked(n, undefined); // eslint-disable-line no-undef
  }, `request-${req2.id}`);
  await navigated2;
  const card = page.locator(`#requests .req-card[data-request="${req2.id}"]`);
  await card.waitFor();
  check(await card.evaluate((c) => c.classList.contains('req-focus')), 'the card is not marked');
  await page.screenshot({ path: join(SHOTS, 'push-03-request-opened.png') });
  step('a request\'s notification opens its conversation with the card marked');

  // 11. Deny from a notification (the app on the list, not in the conversation): the request ends, the command does
  //     not run, and the conversation shows no card for it.
  await page.click('#back');
  await until(() => presence.at(-1) === null, 'left for the list');
  await deliverShown(asked2, `request-${req2.id}`);
  await sw.evaluate(async (tag) => {
    const [n] = await self.registration.getNotifications({ tag });
    await clicked(n, 'deny'); // eslint-disable-line no-undef
  }, `request-${req2.id}`);
  // The turn's own record: the request answered "deny" (the worker's fetch is not among the page's requests).
  const decision = await until(async () => {
    const { events = [] } = await call('GET', `/api/turns/${req2.turn_id}/events.json?after=0&wait=0`);
    const e = events.find((x) => x.event === 'request_ended' && x.data.id === req2.id);
    return e && e.data.decision;
  }, 'the request ends');
  check(decision === 'deny', `the request ended with ${decision}`);
  await until(async () => !(await call('GET', `/api/conversations/${conv.id}`)).active_turn_id, 'the turn ends');
  check(!existsSync(join(PROJECT, 'later.txt')), 'the denied command ran');
  await page.locator('#conv-list .conv').first().click();
  await page.locator('#messages .turn').nth(1).waitFor();
  check(!(await page.locator('#requests .req-card').count()), 'a card for the denied request');
  step('Deny from a notification');

  // 12. "Turn off": the server forgets it, the browser unsubscribes.
  await openSheet(page);
  const deleted = page.waitForRequest((r) => r.method() === 'DELETE' && r.url().endsWith('/api/push/subscriptions'));
  await page.click('#push-off');
  check((await deleted).postDataJSON().endpoint === subscriptionJson.endpoint, 'DELETE names another endpoint');
  await until(async () => await sheetState(page) === 'off', 'the sheet says "off"');
  check(!(await page.evaluate(() => localStorage.getItem('ra-test-subscription'))), 'still subscribed');
  await page.click('#settings-close');
  step('turned off');

  check(!refused.length, `the mock refused: ${refused.join('; ')}`);
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
}

try {
  await main();
  console.log('push: OK');
} finally {
  await browser.close();
  mock.close();
}
