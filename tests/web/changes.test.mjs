// Browser test of reviewing changes on the phone (390x844): a turn that writes and edits files shows a
// "Changes" strip under it; a tap lists the files (status, +/−); a file opens a one-column diff with line numbers
// and syntax colours; the header's "All changes" lists the conversation's. Env as app.test.mjs.
import { serverFromEnv, launch, phonePage, send, ended, draft, check, step, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();

const browser = await launch();
try {
  const { context, page, errors } = await phonePage(browser, {}, () => false);
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  await draft(page);
  const first = await send(page, 'hello');
  await ended(first);
  check(await first.locator('.changes-strip').count() === 0, 'a turn that changed nothing has a strip');
  const turnId = await first.getAttribute('data-turn');
  // Edits run without asking in acceptEdits.
  const patched = await page.evaluate(async (id) => {
    const t = await (await fetch(`/api/turns/${id}`)).json();
    const r = await fetch(`/api/conversations/${t.conversation_id}`, {
      method: 'PATCH', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ permission_mode: 'acceptEdits' }),
    });
    return r.status;
  }, turnId);
  check(patched === 200, `PATCH: ${patched}`);
  const long = 'x'.repeat(120);
  const py = `# a comment\\ndef greet(name):\\n    return "hi " + name  # ${long}\\n\\nprint(greet("you"))\\n`;
  const turn = await send(page, `[[writefile:hello.py:${py}]] [[writefile:notes.md:one\\ntwo\\nthree\\n]] [[edit:notes.md:two=>2]]`);
  await ended(turn);
  const strip = turn.locator('.changes-strip');
  await strip.waitFor({ timeout: 10000 });
  const text = await strip.textContent();
  check(/2 files/.test(text) && /\+9/.test(text), `strip: ${text}`);
  await page.screenshot({ path: `${SHOTS}/changes-strip.png` });
  step(`the strip under the turn: ${text}`);

  await strip.click();
  const sheet = page.locator('dialog#changes');
  await sheet.locator('.change-row').first().waitFor();
  check(await sheet.locator('.change-row').count() === 2, 'two files listed');
  await page.screenshot({ path: `${SHOTS}/changes-list.png` });
  step('the file list');

  await sheet.locator('.change-row[data-path="hello.py"]').click();
  await sheet.locator('.diff .dl.ins').first().waitFor();
  check(await sheet.locator('.dl.ins').count() === 5, 'five added lines');
  check(await sheet.locator('.tk-k', { hasText: 'def' }).count() === 1, 'def is coloured as a keyword');
  check(await sheet.locator('.tk-c').count() >= 2, 'comments coloured');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390, `the page scrolls sideways: ${width}`);
  await page.screenshot({ path: `${SHOTS}/changes-diff.png` });
  step('the diff: one column, wrapped, coloured');
  await page.click('#changes-back');
  await sheet.locator('.change-row[data-path="notes.md"]').waitFor();
  await page.click('#changes .sheet-bar button.text');
  await sheet.waitFor({ state: 'hidden' });

  await page.click('#changes-open');
  await sheet.locator('.change-row').first().waitFor();
  check(await page.locator('#changes-title').textContent() === 'All changes', 'conversation-level title');
  check(await sheet.locator('.change-row').count() === 2, 'all changes lists two files');
  step('All changes from the header');
  await page.click('#changes .sheet-bar button.text');
  await sheet.waitFor({ state: 'hidden' });

  // The diff view's first paint for a 2,000-line diff (a file of 2,000 lines of JS written): from the tap to the
  // frame after the rows are in (performance marks in changes.js), fetch included. Printed for BENCHMARKS.md.
  const big = Array.from({ length: 2000 }, (_, i) => `const value${i} = "line ${i}"; // note ${i}`).join('\\n');
  const bigTurn = await send(page, `[[writefile:big.js:${big}\\n]]`);
  await ended(bigTurn);
  await bigTurn.locator('.changes-strip').click();
  await sheet.locator('.change-row[data-path="big.js"]').waitFor();
  const runs = [];
  for (let i = 0; i < 5; i++) {
    await page.evaluate(() => performance.clearMarks());
    await sheet.locator('.change-row[data-path="big.js"]').click();
    await page.waitForFunction(() => performance.getEntriesByName('diff-painted').length > 0);
    runs.push(await page.evaluate(() => {
      const [a] = performance.getEntriesByName('diff-open');
      const [b] = performance.getEntriesByName('diff-painted');
      return b.startTime - a.startTime;
    }));
    check(await sheet.locator('.dl.ins').count() === 2000, 'the 2,000 lines are drawn');
    await page.click('#changes-back');
  }
  runs.sort((a, b) => a - b);
  await page.screenshot({ path: `${SHOTS}/changes-big-list.png` });
  step(`first paint of a 2,000-line diff: median ${runs[2].toFixed(0)} ms (${runs.map((r) => r.toFixed(0)).join(', ')})`);
  await page.click('#changes .sheet-bar button.text');
  await sheet.waitFor({ state: 'hidden' });

  // A change of indentation alone is collapsible: the toggle hides its removed line.
  const ws = await send(page, '[[edit:notes.md:three=>   three]] [[edit:notes.md:one=>uno]]');
  await ended(ws);
  await ws.locator('.changes-strip').click();
  await sheet.locator('.change-row[data-path="notes.md"]').click();
  const toggle = sheet.locator('.ws-toggle input');
  await toggle.waitFor();
  check(await sheet.locator('.dl.rem:visible').count() === 2, 'both removed lines shown');
  await toggle.check();
  check(await sheet.locator('.dl.rem:visible').count() === 1, 'the whitespace-only removal is hidden');
  await page.screenshot({ path: `${SHOTS}/changes-whitespace.png` });
  step('whitespace-only changes collapse behind the toggle');
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
