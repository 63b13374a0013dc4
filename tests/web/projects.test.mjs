// Browser test of the project picker at a phone's size: with a project root, "+" opens the picker (a lazily imported
// module); it lists the recent projects, searches them, browses into the root (a git repository marked, the
// breadcrumb and Up), and "Start here" in a nested git directory starts a draft there; the first message creates
// the conversation in that directory and the header names it. Env as app.test.mjs, plus RA_ROOT (the root's path;
// it holds app/.git and app/nested/.git) and RA_RECENT (the path of a recent project inside it).
import { serverFromEnv, launch, phonePage, send, ended, check, step, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();
const { RA_ROOT, RA_RECENT } = process.env;
if (!RA_ROOT || !RA_RECENT) {
  console.error('set RA_ROOT and RA_RECENT');
  process.exit(2);
}

const browser = await launch();
try {
  const { context, page, errors } = await phonePage(browser, {}, () => false);
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  const loaded = () => page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  check(!(await loaded()).some((n) => n.endsWith('/projects.js')), 'projects.js was loaded before it was asked for');

  // "+" opens the picker: the recent projects, and Browse for the root.
  if (await page.locator('#back').isVisible()) await page.click('#back');
  await page.click('#new-conv');
  const sheet = page.locator('#projects');
  await sheet.waitFor();
  const recent = sheet.locator('.proj-project');
  await recent.first().waitFor();
  const paths = await recent.locator('.proj-path').allTextContents();
  check(paths.includes(RA_RECENT), `recent projects: ${paths}`);
  check(await sheet.locator('.proj-root').count() === 1, 'no Browse for the root');
  await page.screenshot({ path: `${SHOTS}/projects-picker.png` });
  step(`the picker lists ${paths.length} projects and the root`);

  // Search: a part of the path, any case.
  const name = RA_RECENT.split('/').pop();
  await page.fill('#projects-q', name.toUpperCase());
  await page.waitForFunction((n) => {
    const rows = [...document.querySelectorAll('#projects .proj-project .proj-name')];
    return rows.length === 1 && rows[0].textContent === n;
  }, name);
  await page.fill('#projects-q', 'no-such-project-here');
  await sheet.locator('.proj-empty', { hasText: 'No project matches.' }).waitFor();
  await page.fill('#projects-q', '');
  await recent.first().waitFor();
  step('search narrows the list');

  // Browse into the root, then into app (git), then nested (git): Start here.
  await sheet.locator('.proj-root').click();
  const app = sheet.locator('.proj-dir', { hasText: 'app' });
  await app.waitFor();
  check(await app.locator('.proj-git').count() === 1, 'app is not marked as a git repository');
  const names = await sheet.locator('.proj-dir .proj-name').allTextContents();
  check(!names.some((n) => n.startsWith('.')), `hidden folders listed: ${names}`);
  // Every row and button of the sheet is a comfortable touch target.
  const small = await page.$$eval('#projects button:not([hidden])', (bs) => bs
    .map((b) => [b.textContent, b.getBoundingClientRect().height])
    .filter(([, h]) => h > 0 && h < 44));
  check(!small.length, `touch targets under 44 px: ${JSON.stringify(small)}`);
  await page.screenshot({ path: `${SHOTS}/projects-browse-root.png` });
  await app.click();
  const nested = sheet.locator('.proj-dir', { hasText: 'nested' });
  await nested.waitFor();
  await nested.click();
  await sheet.locator('.proj-crumb-here', { hasText: 'nested' }).waitFor();
  check(await sheet.locator('.proj-crumb', { hasText: 'app' }).count() === 1, 'the breadcrumb lacks app');
  await page.screenshot({ path: `${SHOTS}/projects-browse-nested.png` });
  // Up goes back one level, and the breadcrumb forward again.
  await page.click('#projects-up');
  await sheet.locator('.proj-crumb-here', { hasText: 'app' }).waitFor();
  await nested.click();
  await sheet.locator('.proj-crumb-here', { hasText: 'nested' }).waitFor();
  step('browsing walks into the root, with the git mark, the breadcrumb and Up');

  await page.click('#projects-start');
  await sheet.waitFor({ state: 'hidden' });
  await page.locator('#chat-project-name', { hasText: 'in nested' }).waitFor();
  const created = page.waitForResponse((r) => r.url().endsWith('/api/conversations') && r.request().method() === 'POST');
  await ended(await send(page, 'hello from the nested repository'));
  const conv = await (await created).json();
  check(conv.project === `${RA_ROOT}/app/nested`, `the conversation runs in ${conv.project}`);
  await page.locator('#chat-project-name', { hasText: 'nested · on the computer' }).waitFor();
  check(await page.locator('#chat-project').getAttribute('title') === conv.project, 'the header lacks the full path');
  await page.screenshot({ path: `${SHOTS}/projects-chat.png` });
  step(`a conversation started in ${conv.project} and the header names it`);

  // The list shows it with its project.
  await page.click('#back');
  const row = page.locator('#conv-list .conv', { hasText: 'hello from the nested' }).locator('.conv-project');
  check((await row.textContent()) === 'nested', `the row's project: ${await row.textContent()}`);
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
