// The export sheet, imported on first use: links that download the open conversation as Markdown or JSON (a plain
// same-origin GET, so the session cookie goes with it).

const FORMATS = [['markdown', 'Markdown', 'primary'], ['json', 'JSON', '']];

export function openExport(conv, name) {
  const url = (format) => `/api/conversations/${encodeURIComponent(conv.id)}/export?format=${format}`;
  let d = document.getElementById('export');
  if (!d || typeof d.showModal !== 'function') {
    if (typeof HTMLDialogElement !== 'function') {
      // Browsers without <dialog>: Markdown straight away.
      location.href = url('markdown');
      return;
    }
    d = document.createElement('dialog');
    d.id = 'export';
    d.className = 'ask';
    d.setAttribute('aria-labelledby', 'export-title');
    d.innerHTML = '<form method="dialog" class="ask-card"><h2 id="export-title"></h2>'
      + '<p>Download the whole conversation: messages, replies, tool calls and their output, costs.</p>'
      + '<div class="ask-buttons export-buttons"><button class="text" value="cancel">Close</button></div></form>';
    const buttons = d.querySelector('.ask-buttons');
    for (const [format, label, kind] of FORMATS) {
      const a = document.createElement('a');
      a.className = `button ${kind}`;
      a.dataset.format = format;
      a.textContent = label;
      a.setAttribute('download', '');
      // Closing after the click: the download has been started by then.
      a.addEventListener('click', () => setTimeout(() => d.close(), 0));
      buttons.prepend(a);
    }
    document.body.append(d);
  }
  d.querySelector('#export-title').textContent = `Export “${name}”`;
  for (const a of d.querySelectorAll('a[data-format]')) a.href = url(a.dataset.format);
  d.showModal();
}
