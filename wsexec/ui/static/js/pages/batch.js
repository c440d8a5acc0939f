// A fan-out as a grid, one cell per host: state and rc filled in live from /events?batch=, each opening its task.

import { follow, get, query } from '../api.js';
import { h, replace, stateBadge } from '../dom.js';

export async function render(main, context, [id], signal) {
  const [batch, instances] = await Promise.all([get(`batches/${id}`, { signal }), instanceNames(signal)]);
  const tasks = (await get(`tasks${query({ batch: id, page_size: 100 })}`, { signal })).results;
  const counts = h('p', { class: 'counts', id: 'batch-counts' });
  const cells = new Map();
  const states = new Map(tasks.map((task) => [task.id, task.state]));
  const grid = h('div', { class: 'hosts', id: 'batch-grid' }, tasks.sort((a, b) => a.id - b.id).map((task) => {
    const cell = h('a', { class: 'host', href: `#/tasks/${task.id}`, dataset: { task: task.id, instance: task.instance } },
      h('span', { class: 'host-name' }, instances.get(task.instance) || `instance ${task.instance}`),
      h('span', { class: 'host-state' }, stateBadge(task.state)),
      h('span', { class: 'host-rc' }, rcText(task.rc)));
    cells.set(task.id, cell);
    return cell;
  }));
  function count() {
    const by = {};
    for (const state of states.values()) by[state] = (by[state] || 0) + 1;
    counts.textContent = `${batch.total} hosts: ` + Object.entries(by).map(([s, n]) => `${n} ${s}`).join(', ');
  }
  const first = tasks[0] ? await get(`tasks/${tasks[0].id}`, { signal }) : {};
  replace(main, h('h1', {}, `Batch ${id}`, first.name ? `: ${first.name}` : ''),
    first.script ? h('pre', { class: 'script' }, first.script) : '', counts, grid);
  count();
  follow(`events${query({ batch: id, last_event_id: '0-0' })}`, ({ data }) => {  // from its first event: none missed
    const change = JSON.parse(data);
    const cell = cells.get(change.task);
    if (!cell) return;
    states.set(change.task, change.state);
    replace(cell.querySelector('.host-state'), stateBadge(change.state));
    if ('rc' in change) cell.querySelector('.host-rc').textContent = rcText(change.rc);
    cell.dataset.state = change.state;
    count();
  }, signal, context.fail);
}

function rcText(rc) {
  return rc === undefined || rc === null ? '' : `rc ${rc}`;
}

export async function instanceNames(signal) {
  const names = new Map();
  for (let page = 1; ; page += 1) {
    const list = await get(`instances${query({ page, page_size: 100 })}`, { signal });
    for (const instance of list.results) names.set(instance.id, `${instance.ip}:${instance.port}`);
    if (!list.next || page >= 10) return names;
  }
}
