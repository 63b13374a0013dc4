// Browser test of attachments from the phone (390x844): the composer's "+" picks two images (a small PNG and a
// 3000x2000 one that the browser shrinks before the upload), their chips show thumbnails and a ×, a file over the
// limit is refused with a note before any upload, the message goes as multipart, Claude (the fake) gets both
// images, and the transcript shows the thumbnails, a tap opening the full image. Env as app.test.mjs.
import { deflateSync } from 'node:zlib';
import { serverFromEnv, launch, phonePage, ended, draft, check, step, signIn } from './lib.mjs';

const { RA_URL, RA_USER, RA_PASS, SHOTS } = serverFromEnv();

// A PNG of w x h: colour blocks of 16 px (so a photo-sized image is megabytes, as a phone's is).
function png(w, h, seed) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4); sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const raw = Buffer.alloc((w * 3 + 1) * h);
  let x0 = seed;
  const rand = () => { x0 = (x0 * 1103515245 + 12345) & 0x7fffffff; return x0 & 0xff; };
  const blocks = [];
  for (let by = 0; by < Math.ceil(h / 16); by++) {
    blocks.push(Array.from({ length: Math.ceil(w / 16) }, () => [rand(), rand(), rand()]));
  }
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    for (let x = 0; x < w; x++) {
      const [r, g, b] = blocks[y >> 4][x >> 4];
      const n = rand() & 15; // a little noise, as a camera's
      raw[row + 1 + x * 3] = r ^ n; raw[row + 2 + x * 3] = g ^ n; raw[row + 3 + x * 3] = b ^ n;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 1 })), chunk('IEND', Buffer.alloc(0))]);
}

const browser = await launch();
try {
  const { context, page, errors } = await phonePage(browser, {}, () => false);
  await signIn(page, { RA_URL, RA_USER, RA_PASS });
  await draft(page);
  const early = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
  check(!early.some((n) => n.endsWith('/attach.js')), 'attach.js was loaded before anything was attached');
  const plus = page.locator('#attach');
  const box = await plus.boundingBox();
  check(box.width >= 44 && box.height >= 44, `the + is ${box.width}x${box.height}`);
  step('the composer has a "+" of at least 44 px, and attach.js is not part of the first load');

  const small = png(120, 90, 1);
  const big = png(3000, 2000, 2);
  await page.setInputFiles('#files', [
    { name: 'small.png', mimeType: 'image/png', buffer: small },
    { name: 'photo.png', mimeType: 'image/png', buffer: big },
  ]);
  const chips = page.locator('#chips .chip');
  await chips.nth(1).waitFor();
  check(await chips.count() === 2, `${await chips.count()} chips`);
  check(await chips.nth(1).locator('.chip-name').textContent() === 'photo.jpg',
    `the shrunk photo's chip says ${await chips.nth(1).locator('.chip-name').textContent()}`);
  const thumbsLoaded = await page.locator('#chips img').evaluateAll((imgs) => imgs.every((i) => i.naturalWidth > 0));
  check(thumbsLoaded, 'a chip thumbnail did not load');
  step(`two chips with thumbnails (the ${(big.length / 1e6).toFixed(1)} MB photo shrunk to a JPEG)`);

  // A file over the limit is refused here, with a note, and no chip.
  await page.setInputFiles('#files', [{ name: 'huge.bin', mimeType: 'application/octet-stream',
    buffer: Buffer.alloc(10 * 1024 * 1024 + 1) }]);
  const note = page.locator('#attach-note');
  await note.waitFor();
  check(/huge\.bin: larger than 10 MB, the most a file may be/.test(await note.textContent()), `note: ${await note.textContent()}`);
  check(await chips.count() === 2, 'the refused file got a chip');
  await page.screenshot({ path: `${SHOTS}/attach-chips.png` });
  step('a file over 10 MB is refused before upload, with a note');

  // The × removes one; pick the small one again.
  await page.getByRole('button', { name: 'Remove small.png' }).click();
  check(await chips.count() === 1, 'the × did not remove the chip');
  await page.setInputFiles('#files', [{ name: 'small.png', mimeType: 'image/png', buffer: small }]);
  await chips.nth(1).waitFor();
  check(await note.isHidden(), 'the note stayed after a good pick');
  step('the × removes a chip');

  const uploads = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && r.url().endsWith('/messages')) uploads.push(r.headers()['content-type']);
  });
  const before = await page.locator('#messages .turn').count();
  await page.fill('#input', 'what are these?');
  await page.click('#send');
  const turn = page.locator('#messages .turn').nth(before);
  await turn.waitFor({ state: 'attached' });
  await ended(turn);
  check(uploads.length === 1 && uploads[0].startsWith('multipart/form-data'), JSON.stringify(uploads));
  // What the server got, as its transcript says.
  const sent = await page.evaluate(async () => {
    const list = await (await fetch('/api/conversations')).json();
    const conv = await (await fetch(`/api/conversations/${list.conversations[0].id}`)).json();
    return conv.messages.find((m) => m.type === 'user').attachments;
  });
  check(sent.length === 2 && sent[0].name === 'photo.jpg' && sent[0].media_type === 'image/jpeg', JSON.stringify(sent));
  check(sent[0].size < big.length / 2, `the photo went as ${sent[0].size} bytes, from ${big.length}`);
  check(sent[1].size === small.length, `the small PNG went as ${sent[1].size} bytes, not ${small.length}`);
  check(await chips.count() === 0 && await page.locator('#chips').isHidden(), 'the chips stayed after sending');
  const reply = await turn.locator('.bubble.assistant').last().textContent();
  check(/\[image image\/jpeg, \d+ bytes of base64\]/.test(reply) && /\[image image\/png, \d+ bytes of base64\]/.test(reply),
    `Claude did not get both images: ${reply}`);
  step(`sent as multipart (the photo as ${(sent[0].size / 1e6).toFixed(2)} MB, from ${(big.length / 1e6).toFixed(1)} MB); Claude got a JPEG and a PNG`);

  // From the server: the transcript's thumbnails, the shrunk photo's size, a tap opening the full image.
  await page.reload();
  const bubble = page.locator('#messages .bubble.user').last();
  await bubble.locator('img').nth(1).waitFor();
  const thumbs = await bubble.locator('img').evaluateAll((imgs) => imgs.map((i) => ({
    src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight })));
  check(thumbs.length === 2 && thumbs.every((t) => new URL(t.src, RA_URL).pathname.startsWith('/api/attachments/')), JSON.stringify(thumbs));
  await page.waitForFunction(() => [...document.querySelectorAll('#messages .bubble.user img')]
    .every((i) => i.complete && i.naturalWidth > 0));
  const sizes = await bubble.locator('img').evaluateAll((imgs) => imgs.map((i) => [i.naturalWidth, i.naturalHeight]));
  check(sizes[0][0] === 2000 && sizes[0][1] === 1333, `the photo came back ${sizes[0]}`);
  check(sizes[1][0] === 120, `the small one came back ${sizes[1]}`);
  await page.screenshot({ path: `${SHOTS}/attach-transcript.png` });
  const opening = context.waitForEvent('page');
  await bubble.locator('a.thumb').first().click();
  const full = await opening;
  await full.waitForLoadState();
  check(/\/api\/attachments\/[0-9a-f-]{36}$/.test(full.url()), `the tap opened ${full.url()}`);
  await full.close();
  step('after a reload the transcript shows both thumbnails from the server (the photo 2000x1333); a tap opens it');
  check(!errors.length, `errors:\n${errors.join('\n')}`);
  await context.close();
} catch (e) {
  console.error(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
