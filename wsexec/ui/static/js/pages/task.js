// One task: its fields, its output streamed live (ANSI colours), rc, error and timings, and Cancel for operators.

import { AnsiUp } from '../../vendor/ansi_up/ansi_up.js';
import { call, get, stream } from '../api.js';
import { duration, h, replace, stateBadge, when } from '../dom.js';

const RUNNING = new Set(['INIT', 'CURRENT']);

export async function render(main, context, [id], signal) {
  let task = await get(`tasks/${id}`, { signal });
  const summary = h('dl', { class: 'summary', id: 'task-summary' });
  const cancel = h('button', { type: 'button', id: 'task-cancel', class: 'danger' }, 'Cancel');
  const output = { stdout: h('pre', { class: 'output', id: 'task-stdout' }),
    stderr: h('pre', { class: 'output stderr', id: 'task-stderr' }) };
  const ansi = { stdout: new AnsiUp(), stderr: new AnsiUp() };
  cancel.addEventListener('click', async () => {
    try {
      task = await call('PATCH', `tasks/${id}`, { state: 'ABORT' });
      show();
    } catch (error) { context.fail(error); }
  });

  function show() {
    const rows = [
      ['state', stateBadge(task.state)], ['rc', task.rc ?? ''], ['error', task.error || ''],
      ['instance', task.instance ? h('a', { href: `#/instances?id=${task.instance}` }, task.instance) : ''],
      ['user', task.user || ''], ['tag', task.tag],
      ['batch', task.batch ? h('a', { href: `#/batches/${task.batch}` }, task.batch) : ''],
      ['created', `${when(task.created_at)} by ${task.created_by || '?'}`],
      ['started', when(task.start)], ['ended', when(task.end)], ['took', duration(task.start, task.end)],
      ['waiting', task.waiting || ''],
    ];
    replace(summary, rows.filter(([, value]) => value !== '').map(([name, value]) =>
      [h('dt', {}, name), h('dd', { class: `task-${name}` }, value)]));
    cancel.hidden = !(context.can('operator') && RUNNING.has(task.state));
  }

  replace(main,
    h('h1', { class: 'title' }, `Task ${task.id}: ${task.name}`, cancel),
    summary,
    h('h2', {}, 'Script'), h('pre', { class: 'script' }, task.script || `(${task.kind || 'script'})`),
    h('h2', {}, 'Output'), output.stdout,
    h('h2', {}, 'Errors (stderr)'), output.stderr);
  show();

  await stream(`tasks/${id}/output?follow=true`, ({ event, data }) => {
    if (event === 'stdout' || event === 'stderr') {
      output[event].insertAdjacentHTML('beforeend', ansi[event].ansi_to_html(data));  // ansi_up escapes the text
      if (task.state === 'INIT') {  // output comes only from a running task
        task.state = 'CURRENT';
        show();
      }
    } else if (event === 'end') {
      Object.assign(task, JSON.parse(data));
      show();
    } else if (event === 'error') {
      context.fail(new Error(JSON.parse(data).error || 'the output stream stopped'));
    }
  }, { signal });
  task = await get(`tasks/${id}`, { signal });  // the end's timings
  show();
}
