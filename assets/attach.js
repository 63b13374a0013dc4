// Attachments in the composer, loaded when the person first picks something: the chips of what is attached (a
// thumbnail or a name, and a × that removes it), the checks the server makes, said before anything is uploaded, and
// images shrunk in the browser when they are larger than Claude needs (a phone's photo is 3-12 MB), so the upload
// stays small on a phone connection.

import { el } from './markdown.js';
import { $ } from './turn.js';

// The server's limits (docs/api.md, "Attachments").
const IMAGE_TYPES = ['image/jpeg', 'image/png', 'image/gif', 'image/webp'];
const MAX_IMAGE_BYTES = 5 * 1024 * 1024 / 4 * 3;
const MAX_IMAGES = 10;
const MAX_FILES = 10;
const MAX_FILE_BYTES = 10 * 1024 * 1024;
// Claude scales an image with a longer side down anyway; a larger one is only a slower upload.
const SEND_SIDE = 2000;
const QUALITY = 0.85;

// What is attached to the message being written: {name, type, kind: 'image'|'file', blob, url}.
const chosen = [];

const mb = (n) => `${+(n / 1024 / 1024).toFixed(2)} MB`;

function say(message) {
  const note = $('attach-note');
  note.textContent = message;
  note.hidden = !message;
  render();
}

// Takes what the picker gave; what breaks a limit is left out, and the note says why.
export async function add(files) {
  const problems = [];
  for (const f of files) {
    try {
      chosen.push(await prepare(f));
    } catch (e) {
      problems.push(`${f.name}: ${e.message}`);
    }
    render();
  }
  say(problems.join('\n'));
}

async function prepare(f) {
  const count = (kind) => chosen.filter((c) => c.kind === kind).length;
  if (f.type.startsWith('image/')) {
    if (count('image') >= MAX_IMAGES) throw new Error(`at most ${MAX_IMAGES} images per message`);
    let blob = f;
    let type = f.type;
    let name = f.name;
    let bitmap = null;
    try { bitmap = await createImageBitmap(f); } catch { /* not an image this browser reads */ }
    const side = bitmap ? Math.max(bitmap.width, bitmap.height) : 0;
    if (bitmap && (side > SEND_SIDE || f.size > MAX_IMAGE_BYTES || !IMAGE_TYPES.includes(f.type))) {
      blob = await shrink(bitmap);
      type = blob.type;
      name = `${name.replace(/\.[^.]*$/, '') || 'image'}.${type === 'image/webp' ? 'webp' : 'jpg'}`;
    }
    if (bitmap) bitmap.close();
    if (!IMAGE_TYPES.includes(type)) throw new Error('images must be JPEG, PNG, GIF or WebP');
    if (blob.size > MAX_IMAGE_BYTES) throw new Error(`larger than ${mb(MAX_IMAGE_BYTES)}, the most an image may be`);
    return { name: fileName(name), type, kind: 'image', blob, url: URL.createObjectURL(blob) };
  }
  if (count('file') >= MAX_FILES) throw new Error(`at most ${MAX_FILES} files per message`);
  if (f.size > MAX_FILE_BYTES) throw new Error(`larger than ${mb(MAX_FILE_BYTES)}, the most a file may be`);
  return { name: fileName(f.name), type: f.type || 'application/octet-stream', kind: 'file', blob: f };
}

// The server takes a plain file name, not hidden and without control characters.
function fileName(name) {
  return name.replace(/[\u0000-\u001f\u007f/\\]/g, '_').replace(/^\.+/, '') || 'file';
}

// Draws the image at most SEND_SIDE on its longer side and encodes it as JPEG (WebP where JPEG came out larger).
async function shrink(bitmap) {
  const scale = Math.min(1, SEND_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = el('canvas');
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff'; // JPEG has no transparency: white, not black, behind it
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const encode = (type) => new Promise((resolve) => canvas.toBlob(resolve, type, QUALITY));
  const jpeg = await encode('image/jpeg');
  if (jpeg && jpeg.size <= MAX_IMAGE_BYTES) return jpeg;
  const webp = await encode('image/webp');
  return webp && webp.type === 'image/webp' && (!jpeg || webp.size < jpeg.size) ? webp : jpeg;
}

function render() {
  const box = $('chips');
  box.querySelectorAll('.chip').forEach((c) => c.remove());
  for (const c of chosen) {
    const chip = el('div', 'chip');
    if (c.kind === 'image') {
      const img = el('img');
      img.src = c.url;
      img.alt = c.name;
      chip.append(img);
    } else {
      chip.append(el('span', null, '📄'));
    }
    chip.append(el('span', 'chip-name', c.name));
    const remove = el('button', 'remove', '×');
    remove.type = 'button';
    remove.setAttribute('aria-label', `Remove ${c.name}`);
    remove.addEventListener('click', () => {
      chosen.splice(chosen.indexOf(c), 1);
      if (c.url) URL.revokeObjectURL(c.url);
      say('');
    });
    chip.append(remove);
    box.insertBefore(chip, $('attach-note'));
  }
  box.hidden = !chosen.length && $('attach-note').hidden;
}

// How many are attached.
export const count = () => chosen.length;

// Hands what is attached to the message being sent, and clears the chips (the bubble keeps the blobs' URLs).
export function take() {
  const taken = chosen.splice(0);
  say('');
  return taken;
}
