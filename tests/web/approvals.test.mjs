// Browser test of "Claude asks, the phone answers", at a phone's size against the real server and the fake claude's
// live mode (`[[bash:CMD]]` asks to run CMD, `[[question]]` asks two questions, `[[plan]]` shows a plan in plan
// mode): the card pinned below the conversation with 48 px buttons and "Always…" apart from Allow and Deny, the
// "waiting for you" marks, Allow (the file exists), Deny with a note (it does not), an edit shown as a diff of its
// file (`[[edit:PATH:OLD=>NEW]]`), a question answered, the mode set
// to plan from the header and a plan approved, and "Interrupt and send" while Claude waits.
//   RA_URL=… RA_USER=… RA_PASS=… RA_PROJECT=<the server's project dir> RA_SHOTS=<dir> node tests/web/approvals.test.mjs
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serverFromEnv, launch, phonePage, send, ended, draft, check, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();
const PROJECT = process.env.RA_PROJECT;
if (!PROJECT) {
  console.error('set RA_PROJECT (the server\'s project directory)');
  process.exit(2);
}
console.log(`screenshots in ${SHOTS}`);

const started = Date.now();
const step = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const browser = await launch();
let current = null;

// The answer buttons of the card on screen: each at least 48 px tall, and "Always…" in no row with Allow or Deny, a
// whole button's height below them.
async function checkButtons(card) {
  const r = await card.evaluate((c) => {
    const box = (e) => e && e.getBoundingClientRect();
    const buttons = [...c.querySelectorAll('button')].filter((b) => b.getClientRects().length);
    const small = buttons.filter((b) => box(b).height < 48).map((b) => `${b.textContent} ${box(b).height}px`);
    const find = (t) => buttons.find((b) => b.textContent.trim() === t);
    const [allow, deny, always] = [find('Allow'), find('Deny'), find('Always…')];
    return {
      small,
      has: { allow: !!allow, deny: !!deny, always: !!always },
      sameRow: always && (allow.parentElement === always.parentElement || deny.parentElement === always.parentElement),
      gapBelow: always && box(always).top - Math.max(box(allow).bottom, box(deny).bottom),
      apart: box(allow).left - box(deny).right,
    };
  });
  check(!r.small.length, `buttons under 48 px: ${r.small.join(', ')}`);
  check(r.has.allow && r.has.deny && r.has.always, `the card's buttons: ${JSON.stringify(r.has)}`);
  check(!r.sameRow && r.gapBelow >= 48, `"Always…" is next to Allow or Deny (${r.gapBelow}px below them)`);
  check(r.apart >= 24, `Allow and Deny are ${r.apart}px apart`);
}

const noSideways = (page) => page.evaluate(() => document.documentElement.scrollWidth <= innerWidth + 1
  && document.getElementById('requests').scrollWidth <= document.getElementById('requests').clientWidth + 1);

// The POST that answers the card, and its body.
const answered = (page) => page.waitForRequest((r) => r.method() === 'POST' && /\/api\/requests\/[^/]+$/.test(r.url()));

async function main() {
  const { context, page, errors } = await phonePage(browser, {}, () => false);
  current = page;
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  await draft(page);

  // 1. Claude asks to run a command: the card, its buttons, the marks; Allow runs it.
  const first = await send(page, '[[bash:touch approved.txt]]');
  const card = page.locator('#requests .req-card');
  await card.waitFor();
  check(await card.count() === 1, `${await card.count()} cards for one request`);
  check((await card.locator('.req-title').innerText()).trim().length > 0, 'the card has no title');
  check((await card.locator('.req-code').innerText()).includes('touch approved.txt'), 'the card does not show the command');
  await checkButtons(card);
  check(await page.locator('#chat-waiting').isVisible(), 'the header does not say "waiting for you"');
  check(await noSideways(page), 'the card scrolls sideways');
  await page.screenshot({ path: join(SHOTS, 'approvals-01-card.png') });
  await card.locator('button', { hasText: 'Always…' }).click();
  await card.locator('.req-confirm').waitFor();
  check(/Always allow|Accept edits|Allow access/.test(await card.locator('.req-confirm').innerText()),
    'Always… does not say the rule it adds');
  await page.screenshot({ path: join(SHOTS, 'approvals-02-always.png') });
  await card.locator('.req-confirm button', { hasText: 'Cancel' }).click();
  step('the card: 48 px buttons, Always… apart and in words, waiting in the header');

  // The list marks the conversation; opened again, the card is there once (GET /api/requests and the replay).
  await page.click('#back');
  const mark = page.locator('#conv-list .conv[aria-current="true"] .badge.waiting');
  await mark.waitFor();
  await page.screenshot({ path: join(SHOTS, 'approvals-03-list.png') });
  await page.locator('#conv-list .conv[aria-current="true"]').click();
  await card.waitFor();
  await page.waitForTimeout(500);
  check(await card.count() === 1, `${await card.count()} cards after opening the conversation again`);
  step('the list says "waiting for you"; the card comes back once');

  let post = answered(page);
  await card.locator('button', { hasText: /^Allow$/ }).click();
  check((await post).postDataJSON().decision === 'allow', 'Allow did not send allow');
  await ended(first, 'succeeded');
  check(await card.count() === 0, 'the card stayed after Allow');
  check(/Allowed: touch approved\.txt/.test(await first.innerText()), 'no record of the allow in the turn');
  check(existsSync(join(PROJECT, 'approved.txt')), 'approved.txt was not created');
  check(await page.locator('#chat-waiting').isHidden(), 'still "waiting for you" after the answer');
  step('Allow: the command ran, the turn ended');

  // 2. Denied, with a note: the file is not created and the turn goes on to its end.
  const second = await send(page, '[[bash:touch denied.txt]]');
  await card.waitFor();
  await card.locator('summary', { hasText: 'Note' }).click();
  await card.locator('.req-note textarea').fill('not this one');
  post = answered(page);
  await card.locator('button', { hasText: /^Deny$/ }).click();
  const denial = (await post).postDataJSON();
  check(denial.decision === 'deny' && denial.message === 'not this one', `the denial sent ${JSON.stringify(denial)}`);
  await ended(second, 'succeeded');
  check(/Denied: touch denied\.txt/.test(await second.innerText()), 'no record of the denial in the turn');
  check(!existsSync(join(PROJECT, 'denied.txt')), 'denied.txt was created');
  step('Deny: the command did not run');

  // 2b. An edit of a file: the card shows the server's diff of the file, with line numbers; Allow makes the edit.
  writeFileSync(join(PROJECT, 'notes.txt'), Array.from({ length: 10 }, (_, k) => `line ${k + 1}\n`).join(''));
  const edit = await send(page, '[[edit:notes.txt:line 5=>five, a much longer line that has to wrap inside the card '
    + 'rather than push it sideways]]');
  await card.waitFor();
  const fileDiff = card.locator('.req-filediff');
  await fileDiff.waitFor();
  const del = fileDiff.locator('.d-del');
  const add = fileDiff.locator('.d-add');
  check(await del.count() === 1 && (await del.innerText()).includes('line 5'), 'the diff does not remove line 5');
  check(await add.count() === 1 && (await add.innerText()).includes('five'), 'the diff does not add the new line');
  check((await del.locator('.d-num').innerText()).trim() === '5', 'the removed line is not numbered 5');
  check(await fileDiff.locator('.d-ctx').count() === 6, 'the diff does not have 3 lines of context each side');
  check(await noSideways(page), 'the diff scrolls sideways');
  await page.screenshot({ path: join(SHOTS, 'approvals-03b-diff.png') });
  post = answered(page);
  await card.locator('button', { hasText: /^Allow$/ }).click();
  check((await post).postDataJSON().decision === 'allow', 'Allow did not send allow');
  await ended(edit, 'succeeded');
  check(readFileSync(join(PROJECT, 'notes.txt'), 'utf8').includes('five, a much'), 'the edit was not made');
  step('an edit shown as a diff of the file, allowed');

  // 3. Two questions: one answer each (the multi-select one two), sent as answers keyed by the question.
  const third = await send(page, '[[question]]');
  await card.waitFor();
  const sets = card.locator('fieldset.req-q');
  check(await sets.count() === 2, `${await sets.count()} questions on the card`);
  for (let i = 0; i < 2; i++) {
    const set = sets.nth(i);
    const multi = await set.locator('input[type="checkbox"]').count() > 0;
    await set.locator('.req-opt').nth(0).click();
    if (multi) await set.locator('.req-opt').nth(1).click();
  }
  check(await noSideways(page), 'the question card scrolls sideways');
  await page.screenshot({ path: join(SHOTS, 'approvals-04-question.png') });
  post = answered(page);
  await card.locator('button', { hasText: 'Submit' }).click();
  const answers = (await post).postDataJSON();
  check(answers.decision === 'allow' && Object.keys(answers.answers || {}).length === 2,
    `the answers sent: ${JSON.stringify(answers)}`);
  check(Object.values(answers.answers).some((a) => a.includes(', ')), 'the multi-select answer is not two labels');
  await ended(third, 'succeeded');
  check(/Answered/.test(await third.innerText()), 'no record of the answers in the turn');
  step('questions answered');

  // 4. Plan mode from the header, then a plan approved.
  await page.click('#mode');
  await page.locator('#modes').waitFor();
  await page.selectOption('#mode-pick', 'plan');
  const patched = page.waitForResponse((r) => r.request().method() === 'PATCH');
  await page.click('#modes button[value="ok"]');
  check((await patched).status() === 200, 'the mode was not saved');
  await page.locator('#mode', { hasText: 'Plan' }).waitFor();
  const fourth = await send(page, '[[plan]]');
  await card.waitFor();
  check(await card.locator('.req-plan').innerText() !== '', 'the plan is empty');
  await page.screenshot({ path: join(SHOTS, 'approvals-05-plan.png') });
  post = answered(page);
  await card.locator('button', { hasText: /^Approve$/ }).click();
  check((await post).postDataJSON().decision === 'allow', 'Approve did not send allow');
  await ended(fourth, 'succeeded');
  check(/Plan approved/.test(await fourth.innerText()), 'no record of the approval in the turn');
  step('plan mode set from the header; the plan approved');

  // 5. While Claude waits, "Interrupt and send" stops that turn (its card goes) and runs the new message.
  await page.click('#mode');
  await page.selectOption('#mode-pick', 'default');
  await page.click('#modes button[value="ok"]');
  await page.locator('#mode', { hasText: 'Ask' }).waitFor();
  const waiting = await send(page, '[[bash:touch never.txt]]');
  await card.waitFor();
  await page.fill('#input', 'never mind that');
  await page.locator('#steer').waitFor();
  const sent = page.waitForRequest((r) => r.method() === 'POST' && /\/messages$/.test(r.url()));
  await page.click('#steer');
  check((await sent).postDataJSON().interrupt === true, 'Interrupt and send did not ask to interrupt');
  const next = page.locator('#messages .turn').last();
  await waiting.locator('.turn-foot[data-status]').waitFor({ timeout: 20000 });
  await ended(next, 'succeeded');
  await card.waitFor({ state: 'detached' });
  check(!existsSync(join(PROJECT, 'never.txt')), 'never.txt was created');
  step('interrupt and send');

  await page.screenshot({ path: join(SHOTS, 'approvals-06-after.png') });
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
}

try {
  await main();
  console.log('ok: approvals from the phone');
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  if (current) await current.screenshot({ path: join(SHOTS, 'approvals-failure.png') }).catch(() => {});
  process.exitCode = 1;
} finally {
  await browser.close();
}
