// Browser test of a conversation's project and "Continue on the computer": the header names the project, its sheet
// (a lazily imported module) gives `cd '<dir>' && claude --resume <session>` after a reply (before one, says a
// session comes with it), and with conversations in two projects the list's filter narrows the list. Env as
// app.test.mjs, plus RA_PROJECT2 (the second allowed project's path).
import { serverFromEnv, launch, phonePage, send, ended, draft, check, step, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();
const { RA_PROJECT2 } = process.env;

const browser = await launch();
try {
  const { context, page, errors } = await phonePage(browser, {}, () => false);
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  const early = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  check(!early.some((n) => n.endsWith('/continue.js')), 'continue.js was loaded before it was asked for');

  // A conversation in the default project, one turn with the fake claude.
  await draft(page);
  await ended(await send(page, 'first project'));
  const id = await page.evaluate(async () => {
    const { conversations } = await (await fetch('/api/conversations')).json();
    return conversations[0].id;
  });
  const conv = await page.evaluate(async (i) => (await fetch(`/api/conversations/${i}`)).json(), id);
  check(/^[0-9a-f-]{36}$/.test(conv.session_id), `session: ${conv.session_id}`);
  const base = conv.project.split('/').filter(Boolean).pop();
  const chip = page.locator('#chat-project');
  await page.locator('#chat-project-name', { hasText: base }).waitFor();
  check(await chip.getAttribute('title') === conv.project, `header project title: ${await chip.getAttribute('title')}`);
  await chip.click();
  const sheet = page.locator('dialog#continue');
  await sheet.waitFor();
  const shown = await sheet.locator('#continue-cmd').inputValue();
  const want = `cd '${conv.project}' && claude --resume ${conv.session_id}`;
  check(shown === want, `command:\n${shown}\nwanted:\n${want}`);
  check((await sheet.locator('#continue-project').textContent()) === conv.project, 'the sheet lacks the full path');
  await sheet.getByRole('button', { name: 'Copy' }).click();
  await sheet.locator('#continue-copy', { hasText: /Copied|Selected/ }).waitFor();
  await page.screenshot({ path: `${SHOTS}/continue-sheet.png` });
  await sheet.getByRole('button', { name: 'Close' }).click();
  await sheet.waitFor({ state: 'hidden' });
  step(`the header's project opens the sheet with ${shown}`);

  // A conversation in the second project, by the API: the list now has a filter.
  await page.evaluate(async (project) => {
    const r = await fetch('/api/conversations', { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ project, title: 'second project' }) });
    if (r.status !== 201) throw new Error(`create: ${r.status}`);
  }, RA_PROJECT2);
  await page.click('#back');
  const rows = page.locator('#conv-list .conv');
  await page.locator('#project-filter-pick').waitFor();
  await rows.nth(1).waitFor();
  check(await rows.count() === 2, `rows: ${await rows.count()}`);
  const second = page.locator('#conv-list .conv', { hasText: 'second project' }).locator('.conv-project');
  check(await second.getAttribute('title') === RA_PROJECT2, `the row's project: ${await second.getAttribute('title')}`);
  check((await second.textContent()) === RA_PROJECT2.split('/').pop(), `the row's project name: ${await second.textContent()}`);
  await page.screenshot({ path: `${SHOTS}/continue-list.png` });
  await page.selectOption('#project-filter', RA_PROJECT2);
  await page.waitForFunction(() => document.querySelectorAll('#conv-list .conv').length === 1);
  check((await rows.first().textContent()).includes('second project'), 'the filter kept the wrong conversation');
  await page.selectOption('#project-filter', '');
  await page.waitForFunction(() => document.querySelectorAll('#conv-list .conv').length === 2);
  step('the project filter narrows the list and "All projects" shows both');

  // The new conversation has no session yet: the sheet says one comes with its first reply.
  await page.locator('#conv-list .conv', { hasText: 'second project' }).click();
  await page.locator('#chat-title', { hasText: 'second project' }).waitFor();
  await page.click('#chat-project');
  await sheet.waitFor();
  check(/after its first reply/.test(await sheet.textContent()), 'no word on the missing session');
  check(!(await sheet.locator('#continue-cmd').isVisible()), 'a command without a session');
  step('without a session the sheet says one comes after the first reply');
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
