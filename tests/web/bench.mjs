// The web app's first load in headless Chromium on loopback: bytes downloaded (all responses, uncompressed) and the
// time to first paint and first contentful paint, over fresh browser contexts (no cache, no service worker).
//   RA_URL=http://127.0.0.1:PORT node tests/web/bench.mjs
import { chromium } from 'playwright-core';

const { RA_URL } = process.env;
const RUNS = 10;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const paints = [];
const contentful = [];
let bytes = 0;
let files = [];
for (let i = 0; i < RUNS; i++) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, serviceWorkers: 'block' });
  const page = await context.newPage();
  const seen = [];
  page.on('response', async (r) => {
    try { seen.push([new URL(r.url()).pathname, (await r.body()).length]); } catch { /* a redirect has no body */ }
  });
  await page.goto(RA_URL, { waitUntil: 'networkidle' });
  const entries = await page.evaluate(() => Object.fromEntries(
    performance.getEntriesByType('paint').map((e) => [e.name, e.startTime])));
  paints.push(entries['first-paint']);
  contentful.push(entries['first-contentful-paint']);
  if (i === 0) { files = seen; bytes = seen.filter(([p]) => !p.endsWith('.svg')).reduce((n, [, b]) => n + b, 0); }
  await context.close();
}
await browser.close();
const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
console.log(`first load: ${files.map(([p, b]) => `${p} ${b} B`).join(', ')}`);
console.log(`bytes on first load, icons excluded: ${bytes} (${(bytes / 1024).toFixed(1)} KB)`);
console.log(`first paint: median ${median(paints).toFixed(0)} ms, first contentful paint: median ${median(contentful).toFixed(0)} ms (${RUNS} loads)`);
