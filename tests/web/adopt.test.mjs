// Browser test of carrying on a session started on the computer, at the phone's size: the list's "On the computer"
// tab (a lazily imported module) shows the CLI's sessions with their titles and projects; a tap adopts one and
// opens it, its history from the session file above (thinking collapsed, tool calls as cards, earlier pages on
// scrolling up), and a message sent there gets the reply of the resumed session. Env as app.test.mjs, plus
// RA_SESSION (the long session's id) and RA_TITLE (the other session's title).
import { serverFromEnv, launch, phonePage, send, ended, check, step, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();
const { RA_SESSION, RA_TITLE } = process.env;

const browser = await launch();
try {
  const { context, page, errors } = await phonePage(browser, {}, () => false);
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  const early = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  check(!early.some((n) => n.endsWith('/computer.js')), 'computer.js was loaded before it was asked for');

  // No conversation of ours yet: the list, then its "On the computer" tab.
  if (await page.locator('#back').isVisible()) await page.click('#back');
  await page.click('#tab-computer');
  const rows = page.locator('#desk-list .desk-session');
  await rows.nth(1).waitFor();
  check(await rows.count() === 2, `rows: ${await rows.count()}`);
  const first = await rows.first().textContent();
  check(first.includes('prompt 0'), `the newest session first, named by its first prompt: ${first}`);
  check(await page.locator('#desk-list', { hasText: RA_TITLE }).count() === 1, `no row titled ${RA_TITLE}`);
  check(/project/.test(await rows.first().locator('.conv-project').textContent()), 'the row names no project');
  check(await page.locator('#tab-computer').getAttribute('aria-selected') === 'true', 'the tab is not selected');
  await page.screenshot({ path: `${SHOTS}/adopt-list.png` });
  step('the computer\'s sessions are listed, newest first, with title and project');

  // A tap adopts the long session and opens it: its latest exchanges from the file.
  await page.locator(`#desk-list .desk-session[data-session="${RA_SESSION}"]`).click();
  const box = page.locator('#messages');
  await box.locator('.history .bubble.user', { hasText: 'prompt 59' }).waitFor();
  await box.locator('.history .bubble.assistant', { hasText: 'reply 59' }).waitFor();
  const thinking = box.locator('.history details.thinking').last();
  check(!(await thinking.evaluate((d) => d.open)), 'thinking is not collapsed');
  const tool = box.locator('.history details.tool', { hasText: 'ls 59' });
  await tool.waitFor();
  check((await tool.locator('.tool-name').textContent()) === 'Bash', 'the tool card lacks its name');
  check((await tool.locator('.tool-state').textContent()) === 'done', 'the tool card is not done');
  await tool.locator('summary').click();
  await tool.locator('.tool-out', { hasText: 'out 59' }).waitFor();
  check(!(await box.textContent()).includes('SYSTEM BLOB'), 'bookkeeping shown');
  check(!(await box.textContent()).includes('Caveat'), 'a meta line shown');
  await page.screenshot({ path: `${SHOTS}/adopt-history.png` });
  step('the adopted session opens with its history: prompts, replies, collapsed thinking, tool cards');

  // Scrolling up brings the earlier pages, down to the session's start.
  for (let i = 0; i < 20; i++) {
    if (await box.locator('.history-note', { hasText: 'Start of the session' }).count()) break;
    await box.evaluate((b) => { b.scrollTop = 0; });
    await page.waitForTimeout(150);
  }
  await box.locator('.history .bubble.user', { hasText: /^prompt 0$/ }).waitFor();
  await box.locator('.history-note', { hasText: 'Start of the session' }).waitFor();
  const prompts = await box.locator('.history .bubble.user').allTextContents();
  check(prompts.length === 60, `prompts shown: ${prompts.length}`);
  check(prompts.every((p, i) => p === `prompt ${i}`), `prompts out of order: ${prompts.slice(0, 5)}`);
  await page.screenshot({ path: `${SHOTS}/adopt-start.png` });
  step('scrolling up loads earlier pages, in order, once each, down to the start');

  // A message here resumes the session (the fake's first prompt in it).
  await box.evaluate((b) => { b.scrollTop = b.scrollHeight; });
  const turn = await send(page, 'carry on from the phone');
  await ended(turn);
  await turn.locator('.bubble.assistant', { hasText: 'echo[1]: carry on from the phone' }).waitFor();
  await page.screenshot({ path: `${SHOTS}/adopt-reply.png` });
  step('a message sent there gets the resumed session\'s reply');

  // Back in the list, it is one of ours; tapping the session again opens the same conversation.
  await page.click('#back');
  await page.click('#tab-here');
  await page.locator('#conv-list .conv').first().waitFor();
  check(await page.locator('#conv-list .conv').count() === 1, 'the adopted conversation is not in the list once');
  await page.click('#tab-computer');
  await page.locator(`#desk-list .desk-session[data-session="${RA_SESSION}"]`).click();
  await box.locator('.bubble.user', { hasText: 'carry on from the phone' }).waitFor();
  const convs = await page.evaluate(async () => (await (await fetch('/api/conversations')).json()).conversations.length);
  check(convs === 1, `conversations after adopting twice: ${convs}`);
  step('adopting it again opens the same conversation');
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
