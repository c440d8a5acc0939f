// The task list: filters in the URL, newest first, states and rc updated live from /events.

import { follow, get, query } from '../api.js';
import { duration, field, formValues, h, replace, select, stateBadge, when } from '../dom.js';

const STATES = [['', 'any state'], ['INIT', 'INIT'], ['CURRENT', 'CURRENT'], ['DONE', 'DONE'], ['ABORT', 'ABORT']];
const FILTERS = ['state', 'tag', 'name', 'instance', 'batch'];
const PAGE_SIZE = 50;
const ORDER = { INIT: 0, CURRENT: 1, DONE: 2, ABORT: 2 };  // a task's state only moves on

export async function render(main, context, _match, signal) {
  const params = context.params();
  const filters = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || '']));
  const page = Number(params.get('page') || 1);
  const form = h('form', { class: 'filters', id: 'task-filters' },
    field('State', select('state', STATES, filters.state)),
    ['tag', 'name', 'instance', 'batch'].map((name) =>
      field(name[0].toUpperCase() + name.slice(1), h('input', { name, value: filters[name], size: 12 }))),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/tasks${query(formValues(form))}`;
  });
  const body = h('tbody', { id: 'task-rows' });
  const pager = h('p', { class: 'pager' });
  replace(main, h('h1', {}, 'Tasks'), form,
    h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, ['id', 'name', 'tag', 'instance', 'state', 'rc', 'created', 'took', 'by']
        .map((name) => h('th', {}, name)))),
      body),
    pager);

  const rows = new Map();
  const seen = new Map();  // task id -> its latest event, for a list that was read before it came
  let reloading = null;
  async function load() {
    const list = await get(`tasks${query({ ...filters, page, page_size: PAGE_SIZE })}`, { signal });
    rows.clear();
    replace(body, list.results.map((task) => {
      const row = taskRow(task);
      rows.set(task.id, row);
      if (seen.has(task.id)) update(row, seen.get(task.id));
      return row;
    }));
    if (!list.results.length) body.append(h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No tasks.')));
    const link = (to, text) => h('a', { href: `#/tasks${query({ ...filters, page: to })}` }, text);
    replace(pager, page > 1 ? link(page - 1, '← newer') : '', ` page ${page}, ${list.count} tasks `,
      list.next ? link(page + 1, 'older →') : '');
  }
  await load();

  const live = { tag: filters.tag, instance: filters.instance, batch: filters.batch };
  follow(`events${query(live)}`, ({ event, data }) => {
    const change = JSON.parse(data);
    seen.delete(change.task);
    seen.set(change.task, change);
    if (seen.size > 5000) seen.delete(seen.keys().next().value);  // the oldest: long off this page
    const row = rows.get(change.task);
    if (row) update(row, change);
    else if (event === 'created' && page === 1 && !reloading) {  // a new task: reload the first page once
      reloading = setTimeout(() => { reloading = null; load().catch(context.fail); }, 300);
    }
  }, signal, context.fail, () => {  // connected: the list as it is from now on, events after it
    body.dataset.live = 'connected';
    load().catch(context.fail);
  });
}

function update(row, change) {
  if (ORDER[change.state] < ORDER[row.dataset.state]) return;  // the list was read after this event
  row.dataset.state = change.state;
  replace(row.querySelector('.col-state'), stateBadge(change.state));
  if (change.rc !== undefined && change.rc !== null) row.querySelector('.col-rc').textContent = change.rc;
}

function taskRow(task) {
  return h('tr', { dataset: { task: task.id, state: task.state } },
    h('td', {}, h('a', { href: `#/tasks/${task.id}` }, task.id)),
    h('td', {}, task.name), h('td', {}, task.tag),
    h('td', {}, task.instance),
    h('td', { class: 'col-state' }, stateBadge(task.state)),
    h('td', { class: 'col-rc' }, task.rc ?? ''),
    h('td', {}, when(task.created_at)),
    h('td', {}, duration(task.start, task.end)),
    h('td', {}, task.created_by));
}
