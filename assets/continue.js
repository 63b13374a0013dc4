// "Continue on the computer", imported on first use: the open conversation's project and the command that resumes
// its Claude session in a terminal there, with a Copy button.

// A word for a POSIX shell: in single quotes, each ' written as '\''.
export function shellQuote(s) {
  return `'${String(s).replace(/'/g, "'\\''")}'`;
}

export function resumeCommand(conv) {
  return `cd ${shellQuote(conv.project)} && claude --resume ${shellQuote(conv.session_id).replace(/^'([\w-]+)'$/, '$1')}`;
}

export function openContinue(conv) {
  let d = document.getElementById('continue');
  if (!d) {
    d = document.createElement('dialog');
    d.id = 'continue';
    d.className = 'ask';
    d.setAttribute('aria-labelledby', 'continue-title');
    d.innerHTML = '<form method="dialog" class="ask-card"><h2 id="continue-title">Continue on the computer</h2>'
      + '<p>Project: <strong id="continue-project"></strong></p><p id="continue-text"></p>'
      + '<textarea id="continue-cmd" class="continue-cmd" rows="3" readonly aria-label="Command"></textarea>'
      + '<div class="ask-buttons"><button id="continue-copy" class="primary" type="button">Copy</button>'
      + '<button class="text" value="cancel">Close</button></div></form>';
    document.body.append(d);
    d.querySelector('#continue-copy').addEventListener('click', () => copy(d));
    d.addEventListener('click', (e) => { if (e.target === d) d.close(); });
  }
  const cmd = d.querySelector('#continue-cmd');
  const copyButton = d.querySelector('#continue-copy');
  d.querySelector('#continue-project').textContent = conv.project || '';
  copyButton.textContent = 'Copy';
  if (conv.session_id) {
    d.querySelector('#continue-text').textContent = 'In a terminal on the computer, this resumes the same Claude '
      + 'session (wait until the running reply, if any, has ended):';
    cmd.value = resumeCommand(conv);
  } else {
    d.querySelector('#continue-text').textContent = 'This conversation has no Claude session yet: it will have one '
      + 'after its first reply, and then a command to resume it here.';
    cmd.value = '';
  }
  cmd.hidden = !conv.session_id;
  copyButton.hidden = !conv.session_id;
  if (typeof d.showModal === 'function') d.showModal();
  else d.setAttribute('open', '');
}

// The clipboard where the browser allows it (a secure context); else the text selected, for the phone's own Copy.
async function copy(d) {
  const cmd = d.querySelector('#continue-cmd');
  const button = d.querySelector('#continue-copy');
  try {
    await navigator.clipboard.writeText(cmd.value);
    button.textContent = 'Copied';
  } catch {
    cmd.focus();
    cmd.select();
    cmd.setSelectionRange(0, cmd.value.length);
    button.textContent = 'Selected: copy it';
  }
}
