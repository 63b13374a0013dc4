// Browser test of a pairing link and the project picker: the browser signs in with the link (RA_PAIR, else the
// password), and with two allowed projects the list shows a picker, and a new conversation runs in the project
// picked. Env as app.test.mjs, plus RA_PROJECT2 (the second project's path) and RA_PAIR (a pairing link).
import { chromium } from 'playwright-core';

const { RA_URL, RA_USER, RA_PASS, RA_PROJECT2 } = process.env;
if (!RA_URL || !RA_USER || !RA_PASS || !RA_PROJECT2) {
  console.error('set RA_URL, RA_USER, RA_PASS and RA_PROJECT2');
  process.exit(2);
}
function check(ok, msg) { if (!ok) throw new Error(msg); }

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  if (process.env.RA_PAIR) {
    // Signed in by a pairing link: its page asks to confirm, the button signs in and lands on the app.
    await page.goto(process.env.RA_PAIR);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${RA_URL}/`);
  } else {
    await page.goto(RA_URL);
    await page.fill('#login-user', RA_USER);
    await page.fill('#login-pass', RA_PASS);
    await page.click('#login-submit');
  }
  await page.locator('#shell').waitFor();
  await page.click('#back');
  await page.locator('#project-pick').waitFor();
  const options = await page.$$eval('#project option', (os) => os.map((o) => o.value));
  check(options.length === 2 && options[1] === RA_PROJECT2, `picker options: ${options}`);
  await page.selectOption('#project', RA_PROJECT2);
  const created = page.waitForResponse((r) => r.url().endsWith('/api/conversations') && r.request().method() === 'POST');
  // "+" opens a draft; the first message creates the conversation, in the project picked.
  await page.click('#new-conv');
  await page.fill('#input', 'in the second project');
  await page.click('#send');
  const conversation = await (await created).json();
  check(conversation.project === RA_PROJECT2, `the conversation runs in ${conversation.project}`);
  console.log('ok: the picker created a conversation in the second project');
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
