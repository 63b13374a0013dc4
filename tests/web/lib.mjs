// What the browser tests share: the server to test from the environment, Debian's Chromium, a phone-sized page
// whose console errors and native dialogs are collected, and the steps of sending a message.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

/** RA_URL, RA_USER, RA_PASS and RA_SHOTS (the screenshots' dir, created), or exit 2 saying what to set. */
export function serverFromEnv() {
  const { RA_URL, RA_USER, RA_PASS } = process.env;
  const SHOTS = process.env.RA_SHOTS || '/tmp/ra-shots';
  if (!RA_URL || !RA_USER || !RA_PASS) {
    console.error('set RA_URL, RA_USER, RA_PASS (and RA_SHOTS for the screenshots)');
    process.exit(2);
  }
  mkdirSync(SHOTS, { recursive: true });
  return { RA_URL, RA_USER, RA_PASS, SHOTS };
}

/** Debian's Chromium, headless, with nothing of its own talking to the network. */
export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A page at a phone's size (390×844, touch). Console errors, page errors and native dialogs land in `errors`,
 * except a console error `expected(text)` accepts: what the test causes on purpose, as `phase` says.
 */
export async function phonePage(browser, phase, expected, options = {}) {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2,
    colorScheme: 'light', ...options,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const t = m.text();
    if (phase.offline && /ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED|Failed to fetch|ERR_FAILED/.test(t)) return;
    if (expected(t)) return;
    errors.push(`console: ${t} (${m.location().url})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => { errors.push(`native ${d.type()} dialog: ${d.message()}`); d.dismiss(); });
  return { context, page, phase, errors };
}

/** Sends `text` from the composer; returns the locator of the turn it started. */
export async function send(page, text) {
  const before = await page.locator('#messages .turn').count();
  await page.fill('#input', text);
  await page.click('#send');
  const turn = page.locator('#messages .turn').nth(before);
  await turn.waitFor({ state: 'attached' });
  return turn;
}

/** Waits for a turn to end with `status`. */
export const ended = (turn, status = 'succeeded', timeout = 20000) =>
  turn.locator(`.turn-foot[data-status="${status}"]`).waitFor({ timeout });

/** Opens a new, empty draft conversation. */
export async function draft(page) {
  if (await page.locator('#back').isVisible()) await page.click('#back');
  await page.click('#new-conv');
  await page.locator('#chat-title', { hasText: 'New conversation' }).waitFor();
}

/** Throws `msg` unless `ok`. */
export function check(ok, msg) { if (!ok) throw new Error(msg); }

/** Says a step passed, so a failure's log shows how far the test got. */
export function step(what) { console.log(`ok: ${what}`); }

/** Opens the app and signs in with the server's credentials; returns once the shell shows. */
export async function signIn(page, { RA_URL, RA_USER, RA_PASS }) {
  await page.goto(RA_URL);
  await page.fill('#login-user', RA_USER);
  await page.fill('#login-pass', RA_PASS);
  await page.click('#login-submit');
  await page.locator('#shell').waitFor();
}

/** Picks `item` (a selector) from the chat header's "⋯" menu. */
export async function fromMenu(page, item) {
  await page.click('#more');
  await page.click(item);
}
