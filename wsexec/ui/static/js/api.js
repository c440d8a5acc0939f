// Every call to the API: credentials from sessionStorage in the Authorization header (never a cookie), errors as one
// ApiError (the API's JSON message and status), Server-Sent Events read from fetch() so they carry the header too.

const BASE = '/wsexec';
const KEY = 'wsexec.authorization';

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }

  get line() {
    const fields = this.detail && typeof this.detail === 'object' && !Array.isArray(this.detail)
      ? Object.entries(this.detail).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : JSON.stringify(v)}`)
      : [];
    return `${this.status ? `${this.status} ` : ''}${this.message}${fields.length ? ` (${fields.join('; ')})` : ''}`;
  }
}

function base64(text) {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export const credentials = {
  get header() { return sessionStorage.getItem(KEY); },
  basic(user, password) { sessionStorage.setItem(KEY, `Basic ${base64(`${user}:${password}`)}`); },
  token(token) { sessionStorage.setItem(KEY, `Bearer ${token}`); },
  clear() { sessionStorage.removeItem(KEY); },
};

export function headers(extra = {}) {
  // X-Wsexec-Client: the server's 401 then challenges a scheme the browser opens no login dialog for
  return { Authorization: credentials.header || '', 'X-Wsexec-Client': 'console', ...extra };
}

async function send(method, path, { body, accept = 'application/json', signal, extra } = {}) {
  const init = { method, headers: headers({ Accept: accept, ...extra }), signal, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path.startsWith('/') ? path : `${BASE}/${path}`, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, `cannot reach the server: ${error.message}`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let message = response.statusText || 'request failed';
  let detail = null;
  try {
    const body = await response.json();
    message = body.error || message;
    detail = body.detail ?? null;
  } catch { /* not our JSON error body (a proxy's page): the status line says enough */ }
  return new ApiError(response.status, message, detail);
}

export async function call(method, path, body, options = {}) {
  const response = await send(method, path, { ...options, body });
  return response.status === 204 ? null : response.json();
}

export const get = (path, options) => call('GET', path, undefined, options);

export async function text(path, options = {}) {
  return (await send('GET', path, { ...options, accept: '*/*' })).text();
}

// Read a text/event-stream answer, calling onEvent({event, data, id}) for each event; resolves when the server ends
// it, with the last id seen (to resume from with Last-Event-ID). onOpen() once the server has answered.
export async function stream(path, onEvent, { signal, lastEventId, onOpen } = {}) {
  const extra = lastEventId ? { 'Last-Event-ID': lastEventId } : {};
  const response = await send('GET', path, { accept: 'text/event-stream', signal, extra });
  if (onOpen) onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { event: 'message', data: [], id: null };
  let last = lastEventId || null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return last;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === '') {
        if (event.data.length) {
          onEvent({ event: event.event, data: event.data.join('\n'), id: event.id });
        }
        event = { event: 'message', data: [], id: null };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      const content = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (name === 'data') event.data.push(content);
      else if (name === 'event') event.event = content;
      else if (name === 'id') { event.id = content; last = content; }
    }
  }
}

// Follow an endless stream (the events), reconnecting with Last-Event-ID after a drop, until signal aborts.
// onOpen() each time it is connected: what changed before then is in no event it will send.
export async function follow(path, onEvent, signal, onError, onOpen) {
  let lastEventId = null;
  while (!signal.aborted) {
    try {
      lastEventId = await stream(path, onEvent, { signal, lastEventId, onOpen });
    } catch (error) {
      if (signal.aborted) return;
      if (onError && error instanceof ApiError && error.status !== 0 && error.status !== 503) {
        onError(error);
        return;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
