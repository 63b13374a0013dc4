// Browser test of how the web app shows what goes wrong, at a phone's size, against the real server and the fake
// claude: errors as cards with Retry ("not logged in", a full disk, a damaged database), a stopped tool, queued
// and unsent messages that can be withdrawn, drafts instead of empty conversations, the offline banner, a reload
// while offline, markdown in lists and in the header, the signed-out first load and the manifest's colours.
//   RA_URL=http://127.0.0.1:PORT RA_USER=me RA_PASS=secret-pass RA_SHOTS=/tmp/shots node tests/web/hardening.test.mjs
import { join } from 'node:path';
import { serverFromEnv, launch, phonePage, send, ended, draft, check } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();

const started = Date.now();
const RUN = Date.now().toString(36);
let current = null;
const step = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const norm = (s) => s.replace(/\s+/g, ' ').trim();

const browser = await launch();

// Console errors fail the test, except what we cause on purpose: the failed requests while offline, and the
// refusals we answer for the server (507, 503).
async function newPage(options = {}) {
  const made = await phonePage(browser, { offline: false, refusing: false },
    (t) => made.phase.refusing && /status of (507|503)/.test(t), options);
  current = made.page;
  // The turns this test makes up for the page have no changes on the server (which would answer 404).
  await made.page.route('**/api/turns/*/changes', (route) => route.fulfill({
    json: { git: false, pending: false, files: [] },
  }));
  return made;
}

async function signIn(page) {
  await page.goto(RA_URL);
  await page.locator('#login-user').waitFor();
  await page.fill('#login-user', RA_USER);
  await page.fill('#login-pass', RA_PASS);
  await page.click('#login-submit');
  await page.locator('#shell').waitFor();
}

async function main() {
  const { context, page, phase, errors } = await newPage();

  // The first load signed out asks a session endpoint that answers 200: the login screen, and no 401 anywhere.
  const statuses = [];
  page.on('response', (r) => { if (new URL(r.url()).pathname.startsWith('/api/')) statuses.push(r.status()); });
  await page.goto(RA_URL);
  await page.locator('#login-user').waitFor();
  check(!statuses.includes(401), `the signed-out first load got a 401: ${statuses}`);
  check(!errors.length, `errors on the signed-out first load:\n${errors.join('\n')}`);
  step('signed-out first load: no 401');

  // The manifest's colours are those of the light theme (the page's own theme-color meta follows dark mode).
  const manifest = await (await page.request.get(`${RA_URL}/manifest.webmanifest`)).json();
  const lightMeta = await page.getAttribute('meta[name="theme-color"][media*="light"]', 'content');
  const luma = (hex) => { const n = parseInt(hex.slice(1), 16); return ((n >> 16) * 299 + ((n >> 8) & 255) * 587 + (n & 255) * 114) / 255000; };
  check(manifest.theme_color === lightMeta, `manifest theme_color ${manifest.theme_color}, light meta ${lightMeta}`);
  check(luma(manifest.background_color) > 0.8, `manifest background_color ${manifest.background_color} is dark`);
  step('manifest colours are light');

  await signIn(page);

  // "+" opens a draft; only the first message creates the conversation.
  let creates = 0;
  page.on('request', (r) => { if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/conversations') creates += 1; });
  const listed = async () => { await page.click('#back'); const n = await page.locator('#conv-list .conv').count(); return n; };
  const before = await listed();
  await page.click('#new-conv');
  await page.locator('#chat-title', { hasText: 'New conversation' }).waitFor();
  await draft(page);
  check(creates === 0, `"+" created ${creates} conversations before any message`);
  check(await listed() === before, 'the list grew without a message');
  await page.click('#new-conv');
  // The header shows a markdown first message as plain text.
  const t1 = await send(page, `**Fix** the \`login\` bug ${RUN} <img src=x id=evil>`);
  await ended(t1);
  check(creates === 1, `${creates} conversations created by the first message`);
  await page.locator('#chat-title', { hasText: `Fix the login bug ${RUN}` }).waitFor();
  check(!/[*`]/.test(await page.innerText('#chat-title')), 'the header shows markdown syntax');
  check(await page.locator('#evil').count() === 0, 'HTML in a first message reached the DOM');
  step('"+" is a draft until the first message; the header is plain text');

  // A numbered list right after a bullet list is numbered.
  const t2 = await send(page, 'lists:\n- a\n- b\n1. one\n2. two');
  await ended(t2);
  const reply = t2.locator('.bubble.assistant');
  check(await reply.locator('ul > li').count() === 2 && await reply.locator('ol > li').count() === 2,
    `lists rendered as ${await reply.innerHTML()}`);
  step('a numbered list after bullets');

  // "steps" under a reply (the CLI's turns), "messages" in the list.
  const t3 = await send(page, 'a tool [[tool]]');
  await ended(t3);
  check(/\b2 steps\b/.test(await t3.locator('.turn-foot').innerText()), `footer: ${await t3.locator('.turn-foot').innerText()}`);
  await page.click('#back');
  const meta = await page.locator('#conv-list .conv[aria-current="true"] .conv-meta').innerText();
  check(/\b3 messages\b/.test(meta) && !/turn/.test(meta), `list meta: ${meta}`);
  await page.locator('#conv-list .conv[aria-current="true"]').click();
  await page.locator('#messages .turn').nth(2).locator('.turn-foot[data-status]').waitFor();
  step('messages and steps');

  // Claude Code not logged in on the computer: an error card that says so and what to run, with Retry.
  const nl = await send(page, `hello [[not-logged-in]] ${RUN}`);
  await ended(nl, 'failed');
  check(await nl.locator('.bubble.assistant').count() === 0, '"Not logged in" came as a reply');
  const card = nl.locator('.error-card');
  const said = await card.innerText();
  check(/not signed in on the computer/i.test(said) && /\/login/.test(said), `the card says: ${said}`);
  await page.screenshot({ path: join(SHOTS, '11-not-logged-in.png') });
  await card.locator('button', { hasText: 'Retry' }).click();
  const again = page.locator('#messages .turn').nth(4);
  await ended(again, 'failed');
  check(norm(await page.locator('#messages .bubble.user').last().innerText()) === `hello [[not-logged-in]] ${RUN}`,
    'Retry did not send the message again');
  step('not logged in: an error card with Retry');

  // Stop during a tool: the tool card says "stopped", not a red "error", live and after a reload.
  const st = await send(page, 'take long [[tool]] [[slow:30]]');
  await st.locator('details.tool').waitFor();
  await page.locator('#status[data-kind="running"]').waitFor();
  await page.click('#stop');
  await ended(st, 'cancelled', 15000);
  check(await st.locator('.tool-state').innerText() === 'stopped', `a stopped tool says ${await st.locator('.tool-state').innerText()}`);
  check(await st.locator('.tool.error').count() === 0, 'a stopped tool is red');
  await page.reload();
  const replayed = page.locator('#messages .turn').nth(5);
  await ended(replayed, 'cancelled');
  check(await replayed.locator('.tool-state').innerText() === 'stopped' && await replayed.locator('.tool.error').count() === 0,
    'after a reload, the stopped tool shows as an error');
  step('a stopped tool says stopped');

  // A message queued behind a running one says so and can be withdrawn: it never runs.
  const long = await send(page, 'busy [[slow:30]]');
  await page.locator('#status[data-kind="running"]').waitFor();
  const queued = await send(page, `wait for me ${RUN}`);
  await queued.locator('.turn-queue', { hasText: 'Queued' }).waitFor();
  await page.screenshot({ path: join(SHOTS, '12-queued.png') });
  const cancelled = page.waitForResponse((r) => /\/api\/turns\/[^/]+\/cancel$/.test(r.url()));
  await queued.locator('.turn-queue button', { hasText: 'Withdraw' }).click();
  check((await cancelled).status() === 202, 'the queued turn was not cancelled');
  await page.click('#stop');
  await ended(long, 'cancelled', 15000);
  await ended(queued, 'cancelled', 15000);
  check(await queued.locator('.turn-queue').isHidden(), 'a cancelled turn still says queued');
  check(await queued.locator('.bubble.assistant').count() === 0, 'the withdrawn message got a reply');
  step('a queued message can be withdrawn');

  // Offline: the banner sits above the header (which stays usable); an unsent message says so and can be withdrawn.
  phase.offline = true;
  await context.setOffline(true);
  await page.locator('#offline').waitFor();
  const layout = await page.evaluate(() => {
    const banner = document.getElementById('offline').getBoundingClientRect();
    const bar = document.querySelector('#chat-view .bar').getBoundingClientRect();
    const more = document.getElementById('more').getBoundingClientRect();
    const hit = document.elementFromPoint(more.x + more.width / 2, more.y + more.height / 2);
    const composer = document.getElementById('composer').getBoundingClientRect();
    return { over: bar.top < banner.bottom - 0.5, hit: hit && hit.id, bottom: composer.bottom, h: innerHeight };
  });
  check(!layout.over && layout.hit === 'more', `the offline banner covers the header: ${JSON.stringify(layout)}`);
  check(layout.bottom <= layout.h + 0.5, `the composer is pushed off screen: ${JSON.stringify(layout)}`);
  await page.fill('#input', `never send ${RUN}`);
  await page.click('#send');
  const unsent = page.locator('.bubble.user.pending', { hasText: `never send ${RUN}` });
  await unsent.locator('.pending-note', { hasText: 'Not sent yet' }).waitFor();
  await page.screenshot({ path: join(SHOTS, '13-offline-unsent.png') });
  await unsent.locator('button', { hasText: 'Cancel' }).click();
  await unsent.waitFor({ state: 'detached' });
  check(await page.evaluate(() => localStorage.getItem('ra.pending')) === '[]', 'the withdrawn message is still kept');
  let leaked = 0;
  page.on('request', (r) => { if ((r.postData() || '').includes(`never send ${RUN}`)) leaked += 1; });
  step('offline: banner above the header; an unsent message withdrawn');

  // A reload while offline shows the last list and transcript from the service worker's copy.
  await context.setOffline(false);
  await page.locator('#offline').waitFor({ state: 'hidden' });
  phase.offline = false;
  const after = await send(page, `back online ${RUN}`);
  await ended(after);
  check(leaked === 0, 'the withdrawn message was sent');
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  if (!(await page.evaluate(() => !!navigator.serviceWorker.controller))) await page.reload();
  await page.reload(); // through the worker, which keeps its copy
  await page.locator('#messages .turn').last().locator('.turn-foot[data-status="succeeded"]').waitFor();
  const turns = await page.locator('#messages .turn').count();
  // The worker saves its copy after the page has its answer; going offline before the save ends would reload the
  // copy before it, which is the worker being slow, not a lost turn. Wait for the copy that holds the last turn.
  await page.waitForFunction(async (text) => {
    const c = await caches.open('ra-api');
    for (const key of await c.keys()) {
      if ((await (await c.match(key)).text()).includes(text)) return true;
    }
    return false;
  }, `back online ${RUN}`, { polling: 100 });
  phase.offline = true;
  await context.setOffline(true);
  await page.reload();
  await page.locator('#shell').waitFor();
  await page.locator('#chat-title', { hasText: `Fix the login bug ${RUN}` }).waitFor();
  await page.locator('#messages .turn', { hasText: `back online ${RUN}` }).waitFor();
  check(await page.locator('#messages .turn').count() === turns, 'the offline reload lost turns');
  await page.locator('#offline').waitFor();
  await page.screenshot({ path: join(SHOTS, '14-offline-reload.png') });
  await page.click('#back');
  await page.locator('#conv-list .conv', { hasText: `Fix the login bug ${RUN}` }).waitFor();
  await context.setOffline(false);
  await page.locator('#offline').waitFor({ state: 'hidden' });
  phase.offline = false;
  // Signing out forgets that copy.
  check(await page.evaluate(() => caches.has('ra-api')), 'no copy of the list was kept');
  await page.click('#logout');
  await page.locator('#login-user').waitFor();
  await page.waitForFunction(async () => !(await caches.has('ra-api')));
  step('a reload offline shows the last list and transcript; sign-out forgets them');
  check(!errors.length, `errors in the page:\n${errors.join('\n')}`);
  await context.close();
}

// With the requests answered for the server (so without the service worker, which page.route cannot see through):
// a full disk, a damaged database, and a transcript with a turn the server stopped mid-reply.
async function refusals() {
  const { context, page, phase, errors } = await newPage({ serviceWorkers: 'block' });
  await signIn(page);
  await draft(page);
  const first = await send(page, `refusals ${RUN}`);
  await ended(first);

  phase.refusing = true;
  // The server's words are text, whatever they hold.
  const full = (route) => route.fulfill({ status: 507, contentType: 'application/json',
    body: '{"error":"disk full <img src=x id=evil507>"}' });
  await page.route(/\/api\/conversations\/[^/]+\/messages$/, full);
  await page.fill('#input', `on a full disk ${RUN}`);
  await page.click('#send');
  const card = page.locator('#messages .error-card', { hasText: 'disk full' });
  await card.waitFor();
  await page.screenshot({ path: join(SHOTS, '15-disk-full.png') });
  check(await page.locator('#evil507').count() === 0, 'HTML in an error reached the DOM');
  await page.unroute(/\/api\/conversations\/[^/]+\/messages$/, full);
  await card.locator('button', { hasText: 'Retry' }).click();
  await card.waitFor({ state: 'detached' });
  // The reply echoes the message: Retry sent it.
  await ended(page.locator('#messages .turn', { hasText: `on a full disk ${RUN}` }));
  check(await page.locator('#messages .bubble.user', { hasText: `on a full disk ${RUN}` }).count() === 1,
    'the refused message shows twice after Retry');
  step('507 disk full: an error card; Retry sends');

  const damaged = (route) => (route.request().method() === 'GET'
    ? route.fulfill({ status: 503, contentType: 'application/json',
      body: JSON.stringify({ error: 'database damaged: run `remote-agent doctor`' }) })
    : route.continue());
  await page.route(/\/api\/conversations\/[^/?]+$/, damaged);
  await page.click('#back');
  await page.locator('#conv-list .conv', { hasText: `refusals ${RUN}` }).click();
  const dcard = page.locator('#messages .error-card', { hasText: 'database damaged: run `remote-agent doctor`' });
  await dcard.waitFor();
  await page.screenshot({ path: join(SHOTS, '16-database-damaged.png') });
  await page.unroute(/\/api\/conversations\/[^/?]+$/, damaged);
  await dcard.locator('button', { hasText: 'Retry' }).click();
  await page.locator('#messages .turn').nth(1).locator('.turn-foot[data-status="succeeded"]').waitFor();
  // The same at start: the list cannot be read. An error card, not the login screen.
  const listDamaged = (route) => route.fulfill({ status: 503, contentType: 'application/json',
    body: JSON.stringify({ error: 'database damaged: run `remote-agent doctor`' }) });
  await page.route(/\/api\/conversations$/, listDamaged);
  await page.reload();
  const lcard = page.locator('#messages .error-card', { hasText: 'database damaged: run `remote-agent doctor`' });
  await lcard.waitFor();
  check(await page.locator('#login').isHidden(), 'a damaged database shows the login screen');
  await page.unroute(/\/api\/conversations$/, listDamaged);
  await lcard.locator('button', { hasText: 'Retry' }).click();
  await page.locator('#messages .turn').nth(1).locator('.turn-foot[data-status="succeeded"]').waitFor();
  phase.refusing = false;
  step('503 database damaged: an error card; Retry loads');

  // A turn the server stopped mid-reply: its partial text shows, marked interrupted.
  const cut = async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    const turn = '00000000-0000-4000-8000-000000000001';
    body.messages.push(
      { type: 'user', turn_id: turn, text: 'cut short', created_at: new Date().toISOString() },
      { type: 'assistant', turn_id: turn, text: 'the first half of' },
      { type: 'result', turn_id: turn, status: 'interrupted', cost: null, num_turns: null, duration_ms: null,
        error: 'the server stopped while this turn ran', finished_at: new Date().toISOString() });
    await route.fulfill({ response: res, json: body });
  };
  await page.route(/\/api\/conversations\/[^/?]+$/, cut);
  await page.reload();
  const partial = page.locator('#messages .turn').last();
  await partial.locator('.bubble.assistant.interrupted', { hasText: 'the first half of' }).waitFor();
  check(await partial.locator('.bubble.assistant .cut').innerText() === 'interrupted', 'the partial reply is not marked');
  await page.screenshot({ path: join(SHOTS, '17-interrupted.png') });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: join(SHOTS, '18-dark-interrupted.png') });
  await page.unroute(/\/api\/conversations\/[^/?]+$/, cut);
  step('an interrupted turn keeps its partial reply, marked');
  check(!errors.length, `errors in the page:\n${errors.join('\n')}`);
  await context.close();
}

try {
  await main();
  await refusals();
  console.log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
  await browser.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  if (current) await current.screenshot({ path: join(SHOTS, 'failure-hardening.png') }).catch(() => {});
  await browser.close();
  process.exit(1);
}
