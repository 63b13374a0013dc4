// Browser test of what a new user's trial of the app found, at a phone's size, against the real server and the fake
// claude: the Enter key's label, the keyboard hiding the newest messages, the typing cursor of a stopped reply, a
// reload while offline (the saved copy up to date and labelled, controls that need the server off, the unsent
// messages shown with their Cancel), and the sign-in lockout in the server's words. Every check runs and the
// failures are listed together at the end. Ends by locking this client out of the server's sign-in.
//   RA_URL=http://127.0.0.1:PORT RA_USER=me RA_PASS=secret-pass RA_SHOTS=/tmp/shots node tests/web/trial.test.mjs
import { join } from 'node:path';
import { serverFromEnv, launch, phonePage, send, ended, draft } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();

const started = Date.now();
const RUN = Date.now().toString(36);
let current = null;
const step = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
const failures = [];
function check(ok, msg) { if (!ok) { failures.push(msg); step(`FAILED: ${msg}`); } }

const browser = await launch();

async function newPage() {
  const made = await phonePage(browser, { offline: false, locked: false },
    (t) => made.phase.locked && /status of (401|429)/.test(t));
  current = made.page;
  return made;
}

async function signIn(page, password = RA_PASS) {
  await page.fill('#login-user', RA_USER);
  await page.fill('#login-pass', password);
  await page.click('#login-submit');
}

async function open(page, name) {
  if (await page.locator('#back').isVisible()) await page.click('#back');
  await page.locator('#conv-list .conv', { hasText: name }).click();
  await page.locator('#chat-title', { hasText: name }).waitFor();
}

// How far the transcript is from showing its newest line, in CSS pixels.
const gap = (page) => page.evaluate(() => {
  const b = document.getElementById('messages');
  return Math.round(b.scrollHeight - b.scrollTop - b.clientHeight);
});

async function main() {
  const { context, page, phase, errors } = await newPage();
  await page.goto(RA_URL);
  await page.locator('#login-user').waitFor();
  await signIn(page);
  await page.locator('#shell').waitFor();
  // The service worker controls the page from here on, before any conversation exists: every copy it keeps of
  // these conversations comes from what the app did after that, not from a reload.
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  if (!(await page.evaluate(() => !!navigator.serviceWorker.controller))) await page.reload();
  await page.locator('#shell').waitFor();

  // A phone's Enter key says what it does: a new line (the Send button sends).
  const hint = await page.getAttribute('#input', 'enterkeyhint');
  check(hint === 'enter', `the composer's enterkeyhint is ${hint}, but Enter inserts a new line on a phone`);
  step(`enterkeyhint=${hint}`);

  // Conversation A: more than a screenful.
  const A = `older ${RUN}`;
  await draft(page);
  const tall = await send(page, `${A}\n${Array.from({ length: 30 }, (_, i) => `line ${i + 1}`).join('\n')}`);
  await ended(tall);

  // The keyboard opens (Android shrinks the viewport): the newest messages stay in sight.
  await page.evaluate(() => { const b = document.getElementById('messages'); b.scrollTop = b.scrollHeight; });
  check(await gap(page) <= 1, 'the transcript did not scroll to the bottom');
  await page.focus('#input');
  await page.setViewportSize({ width: 390, height: 500 });
  await page.waitForFunction(() => document.getElementById('messages').clientHeight < 400);
  // Given the frames a resize takes to settle (the app follows the viewport in its resize handlers).
  await page.waitForFunction(() => {
    const b = document.getElementById('messages');
    return b.scrollHeight - b.scrollTop - b.clientHeight <= 1;
  }, null, { timeout: 3000 }).catch(() => {});
  const short = await gap(page);
  await page.screenshot({ path: join(SHOTS, '21-keyboard-open.png') });
  check(short <= 1, `with the keyboard open the transcript is ${short} px short of its newest line`);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForFunction(() => document.getElementById('messages').clientHeight > 500);
  step(`keyboard open: ${short} px short of the bottom`);

  // A reply stopped while it streams loses its typing cursor, like one the server stopped.
  const streaming = await send(page, 'type slowly [[paced:400:50]]');
  await streaming.locator('.bubble.assistant.streaming').filter({ hasText: /\d/ }).waitFor();
  await page.click('#stop');
  await ended(streaming, 'cancelled');
  const cursors = await streaming.locator('.bubble.streaming').count();
  check(cursors === 0, `a stopped reply keeps its typing cursor (${cursors} .bubble.streaming)`);
  step('a stopped reply: no typing cursor');

  // Conversation B, with a turn still running; then A again (its copy is saved as it opens) and one more turn there.
  const B = `newer ${RUN}`;
  await draft(page);
  const running = await send(page, `${B} [[slow:60]]`);
  await running.locator('.turn-foot').waitFor({ state: 'attached' });
  await page.locator('#status[data-kind="running"]').waitFor();
  await open(page, A);
  const late = await send(page, `after opening ${RUN}`);
  await ended(late);
  const turnsA = await page.locator('#messages .turn').count();
  // B again, and a message typed there while offline.
  await open(page, B);
  await page.locator('#status[data-kind="running"]').waitFor();
  phase.offline = true;
  await context.setOffline(true);
  await page.locator('#offline').waitFor();
  const unsent = `typed offline ${RUN}`;
  await page.fill('#input', unsent);
  await page.click('#send');
  await page.locator('.bubble.user.pending .pending-note', { hasText: 'Not sent yet' }).waitFor();

  // The reload, offline: the conversation the unsent message belongs to, from the saved copy.
  await page.reload();
  await page.locator('#shell').waitFor();
  await page.locator('#offline').waitFor();
  await page.locator('#messages .bubble.user').first().waitFor();
  await page.screenshot({ path: join(SHOTS, '22-offline-reload.png') });
  const title = await page.innerText('#chat-title');
  check(title.includes(B), `the offline reload opened "${title}", not the conversation of the unsent message`);
  const pending = page.locator('.bubble.user.pending', { hasText: unsent });
  check(await pending.count() === 1 && await pending.locator('button', { hasText: 'Cancel' }).count() === 1,
    'after the offline reload the unsent message is not shown with its Cancel');
  const banner = await page.innerText('#offline');
  check(/saved copy from \d{1,2}:\d{2}/i.test(banner), `the banner does not say which copy this is: "${banner}"`);
  check(await page.locator('#stop').isHidden(), 'Stop is offered for a turn of the saved copy');
  check(await page.locator('#messages .turn-queue:visible').count() === 0, 'a turn of the saved copy says "Queued"');
  const unfinished = await page.locator('#messages .turn').last().locator('.turn-foot').innerText();
  check(/not finished/i.test(unfinished), `the unfinished turn of the saved copy says "${unfinished}"`);
  check(await page.locator('#rename').isDisabled() && await page.locator('#delete').isDisabled(),
    'rename and delete are live on the saved copy');
  // A: its copy has the turn that ended after it was opened, finished.
  await open(page, A);
  await page.locator('#messages .turn').first().waitFor({ state: 'attached' });
  const copied = await page.locator('#messages .turn').count();
  check(copied === turnsA, `A's saved copy has ${copied} turns, not ${turnsA}`);
  const lastFoot = page.locator('#messages .turn').last().locator('.turn-foot');
  check(await lastFoot.getAttribute('data-status') === 'succeeded',
    `A's last turn in the saved copy is "${await lastFoot.innerText()}", not Done`);
  step('the offline reload: saved copies, labelled, up to date, controls off, the unsent message shown');

  // Back online: the live conversation, the unsent message sent once.
  await open(page, B);
  await context.setOffline(false);
  await page.locator('#offline').waitFor({ state: 'hidden' });
  phase.offline = false;
  await page.locator('#status[data-kind="running"]').waitFor();
  check(await page.locator('#rename').isEnabled() && await page.locator('#delete').isEnabled(),
    'rename and delete stay off once the server is back');
  await page.click('#stop');
  const sent = page.locator('#messages .turn', { hasText: new RegExp(`echo\\[\\d+\\]: ${unsent}`) });
  await ended(sent);
  check(await page.locator('#messages .bubble.user', { hasText: unsent }).count() === 1, 'the unsent message shows twice');
  step('back online: live again, the unsent message sent once');

  // A send whose answer is lost as the network goes: the server has the message, the app shows it as unsent. After
  // a reload offline and back online, it shows once (the saved copy is from before it; the server's is not).
  const lost = `answer lost ${RUN}`;
  phase.offline = true;
  let tries = 0;
  await page.route('**/messages', async (route) => {
    const res = await route.fetch();
    if (!tries++) {
      await context.setOffline(true);
      await route.abort('internetdisconnected');
      return;
    }
    // Its resend is answered late, as on a slow line: what shows must not depend on which answer comes first.
    await new Promise((r) => setTimeout(r, 1000));
    await route.fulfill({ response: res });
  }, { times: 2 });
  await page.fill('#input', lost);
  await page.click('#send');
  await page.locator('.bubble.user.pending .pending-note', { hasText: 'Not sent yet' }).waitFor();
  await page.reload();
  await page.locator('.bubble.user.pending', { hasText: lost }).waitFor();
  await context.setOffline(false);
  // The app's requests that failed while offline (a presence report at the reload, a turn's changes) may be
  // logged a moment later: offline errors count as expected until the app says it is back.
  await page.locator('#rename:enabled').waitFor({ state: 'attached' });
  phase.offline = false;
  await ended(page.locator('#messages .turn', { hasText: new RegExp(`echo\\[\\d+\\]: ${lost}`) }));
  const lostShown = await page.locator('#messages .bubble.user', { hasText: lost }).count();
  check(lostShown === 1, `a message whose answer was lost shows ${lostShown} times once back online`);
  step('a send whose answer was lost: shown once back online');
  check(!errors.length, `errors in the page:\n${errors.join('\n')}`);
  await context.close();
}

// Five wrong passwords lock this client out: the form says so in the server's words, and that the right password
// is refused too until then.
async function lockout() {
  const { context, page, phase, errors } = await newPage();
  phase.locked = true;
  await page.goto(RA_URL);
  await page.locator('#login-user').waitFor();
  let said = '';
  for (let i = 0; i < 6 && !/try again/i.test(said); i++) {
    await signIn(page, i < 5 ? `wrong ${i}` : RA_PASS);
    await page.locator('#login-submit:enabled').waitFor();
    await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
    said = await page.innerText('#login-error');
  }
  await page.screenshot({ path: join(SHOTS, '23-locked-out.png') });
  check(/try again in \d+\s(s|min)\b/i.test(said) && /right password|correct password/i.test(said),
    `locked out, the sign-in form says "${said}"`);
  step(`locked out: "${said}"`);
  check(!errors.length, `errors in the page:\n${errors.join('\n')}`);
  await context.close();
}

try {
  await main();
  await lockout();
} catch (e) {
  failures.push(`stopped: ${e.message}`);
  if (current) await current.screenshot({ path: join(SHOTS, 'failure-trial.png') }).catch(() => {});
}
await browser.close();
if (failures.length) {
  console.error(`FAIL:\n${failures.join('\n')}`);
  process.exit(1);
}
console.log(`PASS in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}`);
