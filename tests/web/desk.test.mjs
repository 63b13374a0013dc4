// Browser test of the warning before sending while Claude is open on the computer in the same session: a process
// named claude with `--resume <session>` (a sleeping script, as a terminal's CLI would look) makes Send ask; Cancel
// keeps the message in the field and sends nothing; once it exits, Send sends at once. Env as app.test.mjs.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverFromEnv, launch, phonePage, send, ended, draft, check, step, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();
async function until(what, f, ms = 10000) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'ra-desk-'));
let terminal = null;
const browser = await launch();
try {
  const { page, errors } = await phonePage(browser, {}, () => false);
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  await draft(page);
  await ended(await send(page, 'from the phone'));
  const conv = await page.evaluate(async () => {
    const { conversations } = await (await fetch('/api/conversations')).json();
    return conversations[0];
  });
  check(/^[0-9a-f-]{36}$/.test(conv.session_id), `session: ${conv.session_id}`);
  const desk = () => page.evaluate(async (id) => (await fetch(`/api/conversations/${id}/desk`)).json(), conv.id);
  const turns = () => page.locator('#messages .turn').count();

  // Claude Code opened at the desk on this session.
  const script = join(dir, 'claude');
  writeFileSync(script, '#!/bin/sh\nsleep 300\n');
  chmodSync(script, 0o755);
  terminal = spawn(script, ['--resume', conv.session_id], { stdio: 'ignore' });
  await until('the terminal seen', async () => (await desk()).live);
  const before = await turns();
  await page.fill('#input', 'second writer');
  await page.click('#send');
  const ask = page.locator('dialog#ask');
  await ask.waitFor();
  const said = await ask.textContent();
  check(said.includes('Claude is open on the computer in this session'), `the warning says: ${said}`);
  check(said.includes('Send anyway?'), `no question: ${said}`);
  await page.screenshot({ path: `${SHOTS}/desk-warning.png` });
  await ask.getByRole('button', { name: 'Cancel' }).click();
  await ask.waitFor({ state: 'hidden' });
  check(await page.inputValue('#input') === 'second writer', `the field holds: ${await page.inputValue('#input')}`);
  check(await turns() === before, 'Cancel sent the message');
  step('Send while a terminal holds the session asks first; Cancel keeps the message and sends nothing');

  // The terminal closed: Send goes straight through.
  terminal.kill('SIGKILL');
  terminal = null;
  await until('the terminal gone', async () => {
    const d = await desk();
    return !d.live && d.pids.length === 0;
  });
  await page.click('#send');
  const turn = page.locator('#messages .turn').nth(before);
  await turn.waitFor({ state: 'attached' });
  check(!(await ask.isVisible()), 'asked with no terminal open');
  await ended(turn);
  check(await page.inputValue('#input') === '', 'the field kept a sent message');
  step('with the terminal gone, Send sends without asking');
  check(!errors.length, `errors:\n${errors.join('\n')}`);
} finally {
  if (terminal) terminal.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  await browser.close();
}
