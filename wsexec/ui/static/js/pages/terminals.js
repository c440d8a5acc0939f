// Terminals (websh): open a shell on an instance in xterm.js, resized with the window; the sessions; recordings.

import { FitAddon } from '../../vendor/addon-fit/addon-fit.mjs';
import { Terminal } from '../../vendor/xterm/xterm.mjs';
import { call, get, query } from '../api.js';
import { duration, field, h, replace, select, when } from '../dom.js';
import { play } from './player.js';

export async function render(main, context, [recording], signal) {
  if (recording) {
    await play(main, context, recording, signal);
    return;
  }
  const status = h('p', { class: 'muted', id: 'terminal-status' });
  const screen = h('div', { class: 'terminal', id: 'terminal', hidden: true });
  const sessions = h('section', { id: 'terminal-sessions' });
  replace(main, h('h1', {}, 'Terminals'),
    context.can('operator') ? await opener(context, screen, status, signal, () => list(sessions, context, signal))
      : h('p', { class: 'muted' }, 'Opening a terminal takes the operator role.'),
    status, screen, sessions);
  await list(sessions, context, signal);
}

async function opener(context, screen, status, signal, refresh) {
  const instances = (await get(`instances${query({ state: 'ACTIVE', page_size: 100 })}`, { signal })).results;
  const chosen = context.params().get('instance') || '';
  const form = h('form', { class: 'filters', id: 'terminal-form' },
    field('Instance', select('instance', instances.map((i) => [String(i.id), `${i.id}: ${i.ip}:${i.port} (${i.tag})`]),
      chosen)),
    field('Login user (optional)', h('input', { name: 'user', size: 12 })),
    h('button', { type: 'submit', id: 'terminal-open' }, 'Open terminal'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const user = form.elements.user.value.trim();
    connect(context, screen, status, signal, { instance: Number(form.elements.instance.value), ...(user ? { user } : {}) })
      .then(refresh).catch(context.fail);
  });
  return form;
}

// One shell: the session's websocket carries its bytes; the window's size goes to the PTY with PATCH {rows, cols}.
async function connect(context, screen, status, signal, fields) {
  screen.hidden = false;
  replace(screen);
  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 2000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(screen);
  fit.fit();
  const session = await call('POST', 'websh/sessions', { ...fields, rows: term.rows, cols: term.cols }, { signal });
  const api = new URL(session.api).pathname;
  const socket = new WebSocket(session.websocket);
  socket.binaryType = 'arraybuffer';
  status.textContent = `session ${session.id}: connecting…`;
  socket.addEventListener('open', () => {
    status.textContent = `session ${session.id}: ${session.user}@instance ${session.instance}, ${term.cols}×${term.rows}`;
    screen.dataset.session = session.id;
    term.focus();
  });
  socket.addEventListener('message', (event) => {
    term.write(typeof event.data === 'string' ? event.data : new Uint8Array(event.data));
  });
  socket.addEventListener('close', (event) => {
    status.textContent = `session ${session.id} ended (${event.code}${event.reason ? `: ${event.reason}` : ''})`;
    screen.dataset.ended = 'true';
    term.write(`\r\n[session ended: ${event.code}${event.reason ? ` ${event.reason}` : ''}]\r\n`);
  });
  term.onData((data) => { if (socket.readyState === WebSocket.OPEN) socket.send(data); });
  let pending = null;
  term.onResize(({ rows, cols }) => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      if (socket.readyState !== WebSocket.OPEN) return;
      call('PATCH', api, { rows, cols }).then(() => {
        status.textContent = `session ${session.id}: ${session.user}@instance ${session.instance}, ${cols}×${rows}`;
      }).catch(context.fail);
    }, 150);
  });
  const refit = () => fit.fit();
  window.addEventListener('resize', refit);
  signal.addEventListener('abort', () => {  // leaving the page ends the shell
    window.removeEventListener('resize', refit);
    socket.close(1000, 'left the page');
    term.dispose();
  });
}

async function list(section, context, signal) {
  const sessions = await get(`websh/sessions${query({ page_size: 50 })}`, { signal });
  replace(section, h('h2', {}, 'Sessions'),
    h('table', { class: 'grid', id: 'session-rows' },
      h('thead', {}, h('tr', {}, ['id', 'instance', 'user', 'owner', 'state', 'started', 'took', 'bytes in/out', '']
        .map((name) => h('th', {}, name)))),
      h('tbody', {}, sessions.results.map((s) => h('tr', { dataset: { session: s.id } },
        h('td', {}, s.id), h('td', {}, s.instance), h('td', {}, s.user), h('td', {}, s.owner),
        h('td', {}, s.state), h('td', {}, when(s.start)), h('td', {}, s.start ? duration(s.start, s.end) : ''),
        h('td', {}, `${s.bytes_in ?? 0} / ${s.bytes_out ?? 0}`),
        h('td', {}, context.can('admin') && s.start ? h('a', { href: `#/terminals/${s.id}`, class: 'play' },
          'Play recording') : ''))))),
    sessions.results.length ? '' : h('p', { class: 'muted' }, 'No sessions.'));
}
