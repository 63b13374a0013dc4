// Browser test of the web app against a running server with the fake claude.
//   RA_URL=http://127.0.0.1:PORT RA_USER=me RA_PASS=secret-pass RA_SHOTS=/tmp/shots node tests/web/app.test.mjs
// Drives Debian's Chromium at a phone's size (390×844, touch), light then dark; exits non-zero on a failure.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fromMenu } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS } = process.env;
const SHOTS = process.env.RA_SHOTS || '/tmp/ra-shots';
if (!RA_URL || !RA_USER || !RA_PASS) {
  console.error('set RA_URL, RA_USER, RA_PASS (and RA_SHOTS for the screenshots)');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
// A tag of this run, so that the test also passes against a server that has conversations already.
const RUN = Date.now().toString(36);
const TITLE = `Renamed ${RUN}`;
const OFFLINE = `typed offline ${RUN}`;
// The first message of the first conversation, which names it in the list.
const FIRST = `stream please ${RUN}`;
let current = null; // the page under test, for a screenshot when something fails
const step = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
function check(ok, msg) { if (!ok) throw new Error(msg); }
const norm = (s) => s.replace(/\s+/g, ' ').trim();

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

// Console errors and page errors fail the test, except the network noise we cause on purpose: the 401 of the
// wrong password we type, and failed requests while the test holds the browser offline. (The first load asks
// /api/session, which answers 200 signed out: no 401 there.)
function newErrors(page, phase) {
  const errors = [];
  const expected = (t, url) => (phase.signedOut && /status of 401/.test(t) && url.endsWith('/api/login'))
    || (phase.offline && /ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|Failed to fetch|status of 530/.test(t));
  page.on('console', (m) => {
    if (m.type() === 'error' && !expected(m.text(), m.location().url || '')) {
      errors.push(`console: ${m.text()} (${m.location().url})`);
    }
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  // The app asks in its own dialog; a native one would be a regression.
  page.on('dialog', (d) => { errors.push(`native ${d.type()} dialog: ${d.message()}`); d.dismiss(); });
  return errors;
}

async function newPage(colorScheme) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2, colorScheme,
  });
  const page = await context.newPage();
  current = page;
  page.setDefaultTimeout(15000);
  const phase = { signedOut: true, offline: false };
  const errors = newErrors(page, phase);
  return { context, page, phase, errors };
}

async function signIn(page, phase, shot) {
  await page.goto(RA_URL);
  await page.locator('#login-user').waitFor();
  check(await page.getAttribute('#login-user', 'autocomplete') === 'username', 'user field autocomplete');
  check(await page.getAttribute('#login-pass', 'autocomplete') === 'current-password', 'password autocomplete');
  if (shot) await page.screenshot({ path: join(SHOTS, shot) });
  await page.fill('#login-user', RA_USER);
  await page.fill('#login-pass', 'wrong-password');
  await page.click('#login-submit');
  await page.locator('#login-error', { hasText: 'Wrong' }).waitFor();
  await page.fill('#login-pass', RA_PASS);
  await page.click('#login-submit');
  await page.locator('#shell').waitFor();
  phase.signedOut = false;
}

// Sends a message and returns the locator of the turn it started.
async function send(page, text) {
  const before = await page.locator('#messages .turn').count();
  await page.fill('#input', text);
  await page.click('#send');
  const turn = page.locator('#messages .turn').nth(before);
  await turn.waitFor({ state: 'attached' });
  return turn;
}
const ended = (turn, status = 'succeeded', timeout = 20000) =>
  turn.locator(`.turn-foot[data-status="${status}"]`).waitFor({ timeout });

async function newConversation(page) {
  if (await page.locator('#back').isVisible()) await page.click('#back');
  await page.click('#new-conv');
  await page.locator('#chat-title', { hasText: 'New conversation' }).waitFor();
  check(await page.locator('#messages .turn').count() === 0, 'a new conversation is not empty');
}

// Phone quality checks of what is on screen: no sideways scrolling, big enough touch targets.
async function phoneChecks(page, where) {
  const r = await page.evaluate(() => {
    const wide = document.documentElement.scrollWidth > innerWidth + 1;
    const m = document.getElementById('messages');
    const small = [...document.querySelectorAll('button, summary, input, textarea')].filter((e) => {
      const b = e.getBoundingClientRect();
      return b.width && b.height && (b.height < 43.5 || b.width < 43.5);
    }).map((e) => `${e.tagName}#${e.id}.${e.className} ${e.getBoundingClientRect().width}x${e.getBoundingClientRect().height}`);
    const unlabelled = [...document.querySelectorAll('button, textarea, input')].filter((e) =>
      e.getClientRects().length && !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()));
    return { wide, msgWide: m && m.scrollWidth > m.clientWidth + 1, small, unlabelled: unlabelled.length };
  });
  check(!r.wide && !r.msgWide, `${where}: horizontal scroll`);
  check(!r.small.length, `${where}: touch targets under 44 px: ${r.small.join(', ')}`);
  check(!r.unlabelled, `${where}: ${r.unlabelled} controls without a label`);
}

async function light() {
  const { context, page, phase, errors } = await newPage('light');
  await signIn(page, phase, '01-login.png');
  step('signed in');

  // A conversation; the reply streams: text shows while the turn still runs.
  await newConversation(page);
  const t1 = await send(page, `${FIRST} [[paced:20:100]]`);
  await t1.locator('.bubble.assistant.streaming').filter({ hasText: /\d/ }).waitFor();
  check(await t1.locator('.turn-foot[data-status]').count() === 0, 'text appeared only after the turn ended');
  check(await page.locator('#stop').isVisible(), 'no Stop button while running');
  await page.screenshot({ path: join(SHOTS, '03-chat-streaming.png') });
  await ended(t1);
  const final1 = norm(await t1.locator('.bubble.assistant').innerText());
  check(final1.split(' ').length === 20, `paced reply has ${final1.split(' ').length} parts, not 20`);
  check(/\$\d|turn/.test(await t1.locator('.turn-foot').innerText()), 'no cost/turns under the turn');
  step('streamed text before the end');

  // A tool call is a compact card with the command; its result folded.
  const t2 = await send(page, 'use a tool [[tool]]');
  await ended(t2);
  const card = t2.locator('details.tool');
  check(await card.locator('.tool-name').innerText() === 'Bash', 'tool card has no tool name');
  check((await card.locator('.tool-arg').innerText()).length > 0, 'tool card has no command');
  await card.locator('summary').click();
  await card.locator('.tool-out').waitFor();
  await page.screenshot({ path: join(SHOTS, '04-tool-card.png') });
  step('tool card');

  // Markdown and model text are never HTML.
  const t3 = await send(page, '**bold** `code` <img src=x id=evil> [bad](javascript:alert(1)) [ok](https://example.com)');
  await ended(t3);
  check(await page.locator('#evil, #messages img').count() === 0, 'HTML from model text reached the DOM');
  check(await t3.locator('a[href^="javascript"]').count() === 0, 'a javascript: link was rendered');
  check(await t3.locator('a[href="https://example.com/"][rel~="noopener"]').count() === 1, 'https link missing');
  const [linkColor, accent] = await t3.locator('a[href="https://example.com/"]').evaluate((a) => {
    const probe = document.createElement('span');
    probe.style.color = 'var(--accent)';
    document.body.append(probe);
    const want = getComputedStyle(probe).color;
    probe.remove();
    return [getComputedStyle(a).color, want];
  });
  check(linkColor === accent, `a link is ${linkColor}, not the accent colour ${accent}`);
  check(await t3.locator('strong').count() === 1 && await t3.locator('code').count() >= 1, 'markdown not rendered');
  step('safe markdown');

  // Stop a long turn.
  const t4 = await send(page, 'take long [[tool]] [[slow:30]]');
  await t4.locator('details.tool').waitFor();
  await page.locator('#status[data-kind="running"]').waitFor();
  await page.click('#stop');
  await ended(t4, 'cancelled', 15000);
  check(await page.locator('#stop').isHidden(), 'Stop still shown after cancel');
  check(await t4.locator('.turn-error').count() === 0, 'a cancelled turn says so twice');
  check(await t4.locator('.tool-state').innerText() === 'stopped', 'the tool card of a cancelled turn still waits');
  step('stopped');

  // Drop the connection mid-stream: the text resumes with no part twice. Every sample must be a prefix of the
  // final text, which would fail if a resumed stream re-applied deltas.
  const t5 = await send(page, 'long stream [[paced:40:100]]');
  const bubble = t5.locator('.bubble.assistant').first();
  await t5.locator('.bubble.assistant.streaming').filter({ hasText: /\d/ }).waitFor();
  const resumes = [];
  page.on('request', (r) => { const m = r.url().match(/\/events\?after=(\d+)/); if (m && +m[1] > 0) resumes.push(+m[1]); });
  const samples = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(norm(await bubble.innerText().catch(() => '')).replace(/▍$/, '').trim());
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  phase.offline = true;
  await context.setOffline(true);
  await page.locator('#offline').waitFor();
  await new Promise((r) => setTimeout(r, 1200));
  // A message typed while offline waits and is sent when back.
  await page.fill('#input', OFFLINE);
  await page.click('#send');
  await page.locator('.bubble.user.pending').waitFor();
  await context.setOffline(false);
  await page.locator('#offline').waitFor({ state: 'hidden' });
  await ended(t5);
  sampling = false;
  await sampler;
  phase.offline = false;
  check(resumes.length > 0, 'the stream was not resumed from the last event id');
  const final5 = norm(await bubble.innerText());
  const parts = final5.split(' ');
  check(parts.length === 40 && new Set(parts).size === 40, `resumed reply has ${parts.length} parts`);
  for (const s of samples) check(final5.startsWith(s), `text during resume was not a prefix of the reply: ${s}`);
  const t6 = page.locator('#messages .turn').nth(5);
  await ended(t6);
  check(await page.locator('.bubble.user.pending').count() === 0, 'the offline message was not sent');
  check((await t6.innerText()).includes(OFFLINE), 'the offline message got no reply');
  step(`resumed after a drop from event ${resumes[0]} (${samples.length} samples), offline draft sent`);
  await phoneChecks(page, 'chat');

  // A second conversation; rename it; switch back to the first.
  await newConversation(page);
  const s1 = await send(page, 'second conversation');
  await ended(s1);
  // Until it is renamed, a conversation is named by its message, in the header as in the list.
  await page.locator('#chat-title', { hasText: 'second conversation' }).waitFor();
  // Rename: cancelling sends nothing; Enter in the field renames.
  let patches = 0;
  page.on('request', (r) => { if (r.method() === 'PATCH') patches += 1; });
  // The rarer actions wait behind "⋯", so the title keeps room to be read on a phone.
  const titleBox = await page.locator('#chat-title').boundingBox();
  check(titleBox.width >= 120, `the header leaves the title ${titleBox.width} px`);
  await page.click('#more');
  await page.locator('#more-menu').waitFor();
  await page.screenshot({ path: join(SHOTS, '07-menu.png') });
  await page.click('#rename');
  await page.locator('#more-menu').waitFor({ state: 'hidden' });
  await page.locator('#ask-input').waitFor();
  await page.fill('#ask-input', 'not this');
  await page.click('#ask-cancel');
  await page.locator('#ask').waitFor({ state: 'hidden' });
  await fromMenu(page, '#rename');
  await page.fill('#ask-input', TITLE);
  await page.screenshot({ path: join(SHOTS, '07-rename.png') });
  await page.press('#ask-input', 'Enter');
  await page.locator('#chat-title', { hasText: TITLE }).waitFor();
  check(patches === 1, `${patches} PATCH requests for one rename (a cancelled one among them?)`);
  await page.click('#back');
  await page.locator('#conv-list .conv', { hasText: TITLE }).waitFor();
  await page.locator('#conv-list .conv', { hasText: FIRST }).waitFor();
  await page.screenshot({ path: join(SHOTS, '02-list.png') });
  const [metaSize, titleSize] = await page.locator('#conv-list .conv').first().evaluate((c) =>
    ['.conv-meta', '.conv-title'].map((q) => parseFloat(getComputedStyle(c.querySelector(q)).fontSize)));
  check(metaSize < titleSize, `the list's details (${metaSize}px) are not smaller than its titles (${titleSize}px)`);
  await phoneChecks(page, 'list');
  await page.locator('#conv-list .conv', { hasText: FIRST }).click();
  await page.locator('#messages details.tool').first().waitFor();
  step('switched conversations');

  // A reload shows the whole history from the server; the most recent conversation (the first: it ran last
  // when we switched? no: the second ran last) opens by default.
  await page.reload();
  await page.locator('#chat-title', { hasText: TITLE }).waitFor();
  await page.click('#back');
  await page.locator('#conv-list .conv', { hasText: FIRST }).click();
  await page.locator('#messages details.tool').first().waitFor();
  check(await page.locator('#messages .turn').count() === 6, 'history after reload does not have 6 turns');
  const again = norm(await page.locator('#messages .turn').nth(4).locator('.bubble.assistant').innerText());
  check(again === final5, 'history after reload differs from the streamed text');
  check(/cancelled|Cancelled/.test(await page.locator('#messages .turn').nth(3).innerText()), 'cancel not in history');
  step('reload shows the history');

  // A reload while a turn runs picks the turn up: its text so far, then the rest, each part once, and Stop.
  const r1 = await send(page, 'reload mid-turn [[paced:30:250]]');
  await r1.locator('.bubble.assistant.streaming').filter({ hasText: /\d/ }).waitFor();
  await page.reload();
  const r2 = page.locator('#messages .turn').last();
  await r2.locator('.bubble.assistant').filter({ hasText: /\d/ }).waitFor();
  check(await r2.locator('.turn-foot[data-status]').count() === 0, 'the running turn shows as ended after a reload');
  check(await page.locator('#stop').isVisible(), 'no Stop button for the running turn after a reload');
  await ended(r2);
  const midParts = norm(await r2.locator('.bubble.assistant').innerText()).split(' ');
  check(midParts.length === 30 && new Set(midParts).size === 30, `after a reload mid-turn the reply has ${midParts.length} parts`);
  step('a reload mid-turn follows the turn');

  // Delete a conversation, with confirmation.
  await newConversation(page);
  await send(page, 'to be deleted').then(ended);
  // The laptop asleep behind the tunnel: the edge answers for it with an HTML 530. That is offline too: the
  // banner shows and a message sent meanwhile waits, then goes when the server is back.
  phase.offline = true;
  const edgeDown = (route) => route.fulfill({ status: 530, contentType: 'text/html', body: '<h1>Error 1033</h1>' });
  await page.route(/\/(api\/|health)/, edgeDown);
  await page.fill('#input', `while the edge said 530 ${RUN}`);
  await page.click('#send');
  await page.locator('#offline').waitFor();
  await page.locator('.bubble.user.pending').waitFor();
  await page.unroute(/\/(api\/|health)/, edgeDown);
  await page.locator('#offline').waitFor({ state: 'hidden' });
  const afterEdge = page.locator('#messages .turn').last();
  await ended(afterEdge);
  check((await afterEdge.innerText()).includes('while the edge said 530'), 'the message sent during a 530 was lost');
  phase.offline = false;
  step('a 530 from the tunnel counts as offline; the message waited');
  // An API error shows once, as an error card with Retry, not as a reply (the CLI puts it in the reply too).
  const failed = await send(page, 'this will fail [[error]]');
  await ended(failed, 'failed');
  check(await failed.locator('.bubble.assistant').count() === 0, 'the API error looks like a reply');
  check(await failed.locator('.error-card').count() === 1, 'the API error is not one error card');
  check(/API Error/.test(await failed.locator('.error-card').innerText()), 'the error card lacks the error');
  await failed.locator('.error-card button', { hasText: 'Retry' }).waitFor();
  await fromMenu(page, '#delete');
  await page.locator('#ask-ok', { hasText: 'Delete' }).waitFor();
  check(await page.evaluate(() => document.activeElement.id) === 'ask-cancel', 'delete does not start on Cancel');
  // Escape cancels: the conversation is still there.
  await page.keyboard.press('Escape');
  await page.locator('#ask').waitFor({ state: 'hidden' });
  check((await page.innerText('#chat-title')).includes('to be deleted'), 'Escape did not keep the conversation');
  await fromMenu(page, '#delete');
  await page.locator('#ask-ok', { hasText: 'Delete' }).waitFor();
  check(await page.locator('#ask-input').isHidden(), 'the delete question shows a text field');
  await page.screenshot({ path: join(SHOTS, '08-delete.png') });
  await page.click('#ask-ok');
  await page.locator('#chat-title', { hasText: new RegExp(`${TITLE}|${FIRST}`) }).waitFor();
  step('deleted');

  check(!errors.length, `errors in the page:\n${errors.join('\n')}`);
  await context.close();
}

async function dark() {
  const { context, page, phase, errors } = await newPage('dark');
  await signIn(page, phase, '09-dark-login.png');
  await page.locator('#messages .turn').first().waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  check(r + g + b < 150, `dark mode background is ${bg}`);
  const t = await send(page, 'dark mode reply with a tool [[tool]] and a table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```sh\necho hi\n```');
  await ended(t);
  await t.locator('details.tool summary').click();
  await page.evaluate(() => { const m = document.getElementById('messages'); m.scrollTop = m.scrollHeight; });
  await page.screenshot({ path: join(SHOTS, '05-dark-chat.png') });
  await phoneChecks(page, 'dark chat');
  await fromMenu(page, '#rename');
  await page.locator('#ask-input').waitFor();
  await page.screenshot({ path: join(SHOTS, '10-dark-rename.png') });
  await page.keyboard.press('Escape');
  await page.locator('#ask').waitFor({ state: 'hidden' });
  await page.click('#back');
  await page.screenshot({ path: join(SHOTS, '06-dark-list.png') });
  step('dark mode');

  // A path that holds the event stream back (as some proxies do): after 20 s without a byte the app falls back
  // to the long poll and still shows the whole reply.
  await page.route(/\/events\?after=/, () => { /* never answered */ });
  await page.locator('#conv-list .conv').first().click();
  await page.locator('#messages .turn').first().waitFor({ state: 'attached' });
  const lp = await send(page, 'held back [[paced:10:50]]');
  await ended(lp, 'succeeded', 40000);
  const parts = norm(await lp.locator('.bubble.assistant').innerText()).split(' ');
  check(parts.length === 10 && new Set(parts).size === 10, `long-poll reply has ${parts.length} parts: ${parts.join(" ")}`);
  await page.unroute(/\/events\?after=/);
  step('long poll fallback');
  check(!errors.length, `errors in the page:\n${errors.join('\n')}`);
  await context.close();
}

try {
  await light();
  await dark();
  console.log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
  await browser.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  if (current) await current.screenshot({ path: join(SHOTS, 'failure.png') }).catch(() => {});
  await browser.close();
  process.exit(1);
}
