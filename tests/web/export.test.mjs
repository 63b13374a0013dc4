// Browser test of exporting a conversation from the phone: the header's Export button opens a sheet (a lazily
// imported module) whose Markdown link downloads the conversation and whose JSON link answers 200 with the
// cookie alone. Env as app.test.mjs.
import { readFileSync } from 'node:fs';
import { serverFromEnv, launch, phonePage, send, ended, draft, check, step, signIn, fromMenu } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();

const browser = await launch();
try {
  const { context, page, errors } = await phonePage(browser, {}, () => false, { acceptDownloads: true });
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  // The export module is not part of the first load.
  const early = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  check(!early.some((n) => n.endsWith('/export.js')), 'export.js was loaded before it was asked for');
  await draft(page);
  await ended(await send(page, 'export me'));
  await fromMenu(page, '#export-open');
  const sheet = page.locator('dialog#export');
  await sheet.waitFor();
  await page.screenshot({ path: `${SHOTS}/export-sheet.png` });
  const md = sheet.getByRole('link', { name: 'Markdown' });
  const json = sheet.getByRole('link', { name: 'JSON' });
  check(await md.getAttribute('download') !== null, 'the Markdown link is not a download');
  const jsonHref = await json.getAttribute('href');
  check(/\/api\/conversations\/[^/]+\/export\?format=json$/.test(jsonHref), `JSON link: ${jsonHref}`);
  step('the header opens the export sheet with Markdown and JSON links');

  const downloading = page.waitForEvent('download');
  await md.click();
  const download = await downloading;
  check(/\.md$/.test(download.suggestedFilename()), `downloaded as ${download.suggestedFilename()}`);
  const text = readFileSync(await download.path(), 'utf8');
  check(text.includes('echo[1]: export me'), `the Markdown lacks the reply:\n${text}`);
  await sheet.waitFor({ state: 'hidden' });
  step(`Markdown downloaded as ${download.suggestedFilename()}, the sheet closed`);

  const answer = await page.evaluate(async (href) => {
    const r = await fetch(href);
    return { status: r.status, body: await r.json() };
  }, jsonHref);
  check(answer.status === 200, `JSON export: ${answer.status}`);
  check(answer.body.turns[0].prompt === 'export me', `JSON export: ${JSON.stringify(answer.body)}`);
  step('the JSON link answers 200 with the conversation');
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
