// Play an asciicast v2 recording (admins) in xterm.js at the pace it was recorded: play, pause, restart, speed.

import { Terminal } from '../../vendor/xterm/xterm.mjs';
import { text } from '../api.js';
import { h, replace, select } from '../dom.js';

export function parse(cast) {
  const [first, ...lines] = cast.split('\n').filter((line) => line.trim() !== '');
  const header = JSON.parse(first);
  const events = lines.map((line) => JSON.parse(line)).filter(([time, code]) =>
    typeof time === 'number' && (code === 'o' || code === 'r'));
  return { header, events };
}

export async function play(main, context, id, signal) {
  const { header, events } = parse(await text(`websh/sessions/${id}/recording`, { signal }));
  const total = events.length ? events[events.length - 1][0] : 0;
  const screen = h('div', { class: 'terminal player', id: 'player' });
  const clock = h('span', { id: 'player-clock' });
  const toggle = h('button', { type: 'button', id: 'player-toggle' }, 'Play');
  const restart = h('button', { type: 'button', id: 'player-restart' }, 'Restart');
  const speed = select('speed', [['1', '1×'], ['2', '2×'], ['4', '4×'], ['0.5', '0.5×']], '1');
  replace(main, h('h1', {}, `Recording of session ${id}`), h('p', { class: 'muted' }, header.title || ''),
    h('p', { class: 'controls' }, toggle, ' ', restart, ' ', speed, ' ', clock), screen);
  let term = null;
  let next = 0; // index of the next event to show
  let position = 0; // seconds into the recording
  let timer = null;
  let playing = false;

  function reset() {
    if (term) term.dispose();
    term = new Terminal({ cols: header.width || 80, rows: header.height || 24, fontSize: 14, disableStdin: true });
    term.open(screen);
    next = 0;
    position = 0;
    show();
  }
  function show() {
    clock.textContent = `${position.toFixed(1)} / ${total.toFixed(1)} s`;
    screen.dataset.position = String(next);
    screen.dataset.done = String(next >= events.length);
    toggle.textContent = playing ? 'Pause' : next >= events.length ? 'Play again' : 'Play';
  }
  function step() {  // every event that is due, then sleep until the next one (at the chosen speed)
    timer = null;
    while (next < events.length && events[next][0] <= position + 1e-6) {
      const [, code, data] = events[next];
      if (code === 'o') term.write(data);
      else {
        const [cols, rows] = String(data).split('x').map(Number);
        if (cols > 0 && rows > 0) term.resize(cols, rows);
      }
      next += 1;
    }
    if (next >= events.length) playing = false;
    show();
    if (!playing) return;
    const target = events[next][0];
    timer = setTimeout(() => {
      position = target;
      step();
    }, ((target - position) / Number(speed.value)) * 1000);
  }
  function pause() {
    playing = false;
    clearTimeout(timer);
    timer = null;
    show();
  }
  toggle.addEventListener('click', () => {
    if (playing) { pause(); return; }
    if (next >= events.length) reset();
    playing = true;
    step();
  });
  restart.addEventListener('click', () => { pause(); reset(); });
  signal.addEventListener('abort', () => { pause(); if (term) term.dispose(); });
  reset();
}
