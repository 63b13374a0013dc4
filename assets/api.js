// The API client: every call to the server goes through `api`, which turns the answer into a response or an error
// and notices, on the way, when the server cannot be reached (the offline banner, and a probe of /health until it
// answers again). What to do then, and on a 401, is the app's: it says so once with `onApiEvents`.

// The app's answers to what the API sees: the sign-in is gone (a 401), and the server is reachable again.
const events = { signedOut() {}, reconnected() {} };
export function onApiEvents(handlers) { Object.assign(events, handlers); }

// An answer from the server that is an error (its JSON `error` as the message); `status` is the HTTP status.
// `retryAfter`: the seconds of its Retry-After, if any.
export class HttpError extends Error {
  constructor(status, msg, retryAfter = null) { super(msg); this.status = status; this.retryAfter = retryAfter; }
}
// The server could not be reached (no network, or the tunnel's edge answered for it).
export class NetError extends Error {}

// Every call sends X-Requested-With so that a 401 has no browser password dialog.
export async function api(method, path, body, signal) {
  const opts = { method, headers: { 'X-Requested-With': 'remote-agent' }, credentials: 'same-origin', signal };
  if (body instanceof FormData) {
    opts.body = body; // multipart: the browser sets the type and its boundary
  } else if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    setOffline(true);
    throw new NetError(String(e));
  }
  // The service worker answered from its copy of the last list or transcript: show it, but we are offline.
  if (res.headers.get('X-RA-Cached')) {
    setOffline(true);
    return res;
  }
  // Behind the tunnel, a laptop that sleeps or a server that restarts shows up as the edge's own error page
  // (502, 530, …), not as a failed fetch: that is "unreachable" too, not an answer. Our own errors are JSON.
  if (res.status >= 502 && !(res.headers.get('Content-Type') || '').includes('application/json')) {
    setOffline(true);
    throw new NetError(`HTTP ${res.status} from the way to the server`);
  }
  setOffline(false);
  if (res.status === 401 && path !== '/api/login') events.signedOut();
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error || msg; } catch { /* not JSON */ }
    throw new HttpError(res.status, msg, Number(res.headers.get('Retry-After')) || null);
  }
  return res.status === 204 ? null : res;
}
export const getJSON = async (path) => (await api('GET', path)).json();

// ---------- online / offline ----------

let offline = false;
let probe = null;

// Whether the server was unreachable at the last try.
export const isOffline = () => offline;

export function setOffline(off) {
  if (off === offline) return;
  offline = off;
  document.getElementById('offline').hidden = !off;
  if (off) {
    // Probe until the server answers again; then flush what waited.
    probe = setInterval(async () => {
      try {
        const r = await fetch('/health', { cache: 'no-store' });
        if (r.ok) setOffline(false);
      } catch { /* still away */ }
    }, 2000);
  } else {
    clearInterval(probe);
    events.reconnected();
  }
}
