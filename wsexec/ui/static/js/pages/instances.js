// Instances: filter, declare and edit (admins), facts, and the notes anyone may leave on one.

import { call, get, query } from '../api.js';
import { field, formValues, h, replace, select, when } from '../dom.js';
import { notes } from './notes.js';

const STATES = [['ACTIVE', 'ACTIVE'], ['DEACTIVATE', 'DEACTIVATE']];
const NULLABLE = new Set(['user', 'max_concurrent']);
const FIELDS = ['ip', 'port', 'tag', 'state', 'user', 'login_users', 'max_concurrent', 'host_key'];

export async function render(main, context, _match, signal) {
  const params = context.params();
  const filters = { tag: params.get('tag') || '', state: params.get('state') || '' };
  const form = h('form', { class: 'filters', id: 'instance-filters' },
    field('Tag', h('input', { name: 'tag', value: filters.tag, size: 12 })),
    field('State', select('state', [['', 'any state'], ...STATES], filters.state)),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/instances${query(formValues(form))}`;
  });
  const list = await get(`instances${query({ ...filters, page_size: 100 })}`, { signal });
  const selected = Number(params.get('id')) || null;
  const detail = h('section', { id: 'instance-detail' });
  replace(main, h('h1', {}, 'Instances'), form,
    h('table', { class: 'grid', id: 'instance-rows' },
      h('thead', {}, h('tr', {}, ['id', 'address', 'tag', 'state', 'user', 'max', 'os', 'facts']
        .map((name) => h('th', {}, name)))),
      h('tbody', {}, list.results.map((instance) => h('tr', { dataset: { instance: instance.id },
        class: instance.id === selected ? 'selected' : '' },
      h('td', {}, h('a', { href: `#/instances${query({ ...filters, id: instance.id })}` }, instance.id)),
      h('td', {}, `${instance.ip}:${instance.port}`), h('td', {}, instance.tag), h('td', {}, instance.state),
      h('td', {}, instance.user || ''), h('td', {}, instance.max_concurrent ?? ''),
      h('td', {}, instance.facts?.os || ''), h('td', {}, when(instance.facts_at)))))),
    h('p', { class: 'muted' }, `${list.count} instances`),
    detail,
    context.can('admin') ? instanceForm(context, null) : '');
  if (selected) await showInstance(detail, context, selected, signal);
}

async function showInstance(section, context, id, signal) {
  const instance = await get(`instances/${id}`, { signal });
  const gather = h('button', { type: 'button', id: 'facts-gather' }, 'Gather facts');
  gather.addEventListener('click', async () => {
    gather.disabled = true;
    try {
      await call('POST', `instances/${id}/facts?wait=30`);
      window.dispatchEvent(new HashChangeEvent('hashchange'));  // the list's os column too
    } catch (error) { context.fail(error); gather.disabled = false; }
  });
  const facts = instance.facts ? factList(instance.facts) : h('p', { class: 'muted' }, 'No facts gathered yet.');
  replace(section,
    h('h2', {}, `Instance ${id}: ${instance.ip}:${instance.port}`),
    context.can('operator') ? h('p', {}, h('a', { href: `#/terminals?instance=${id}`, id: 'instance-terminal' },
      'Open a terminal')) : '',
    h('h3', {}, 'Facts', instance.facts_at ? ` (${when(instance.facts_at)})` : ''), facts,
    context.can('admin') ? gather : '',
    context.can('admin') ? instanceForm(context, instance) : '',
    await notes(context, id, signal));
}

function bytes(n) {
  if (typeof n !== 'number') return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i += 1) n /= 1024;
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function factList(facts) {
  const memory = facts.memory || {};
  const rows = [
    ['os', facts.os], ['kernel', facts.kernel], ['cpu cores', facts.cpu_cores],
    ['memory', `${bytes(memory.available)} available of ${bytes(memory.total)}`],
    ['uptime', typeof facts.uptime_seconds === 'number' ? `${(facts.uptime_seconds / 86400).toFixed(1)} days` : ''],
    ['disks', h('ul', {}, (facts.disks || []).map((d) =>
      h('li', {}, `${d.mount}: ${bytes(d.used)} used of ${bytes(d.size)} (${d.filesystem})`)))],
  ];
  return h('dl', { class: 'summary', id: 'instance-facts' }, rows.map(([name, value]) =>
    [h('dt', {}, name), h('dd', {}, value ?? '')]));
}

function instanceForm(context, instance) {
  const value = (name) => {
    const v = instance?.[name];
    return Array.isArray(v) ? v.join(' ') : v ?? '';
  };
  const input = (name, attrs = {}) => h('input', { name, value: String(value(name)), ...attrs });
  const form = h('form', { class: 'instance', id: instance ? 'instance-edit' : 'instance-declare' },
    field('Address', input('ip', { required: true })),
    field('Port', input('port', { type: 'number', min: 1, max: 65535, placeholder: '22' })),
    field('Tag', input('tag', { required: true })),
    field('State', select('state', STATES, value('state') || 'ACTIVE')),
    field('Login user', input('user')),
    field('Other login users (spaces between)', input('login_users')),
    field('Max concurrent tasks', input('max_concurrent', { type: 'number', min: 1 })),
    field('Host key (ssh-ed25519 AAAA… or SHA256:…)', input('host_key', { size: 60 })),
    h('button', { type: 'submit' }, instance ? 'Save' : 'Declare'));
  const box = h('details', { class: 'instance', open: !instance },
    h('summary', {}, instance ? `Edit instance ${instance.id}` : 'Declare an instance'), form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const body = {};
    for (const name of FIELDS) {
      if (!(name in values)) {
        if (instance && NULLABLE.has(name) && instance[name] !== null) body[name] = null;  // cleared
        continue;
      }
      if (name === 'port' || name === 'max_concurrent') body[name] = Number(values[name]);
      else if (name === 'login_users') body[name] = values[name].split(/\s+/);
      else body[name] = values[name];
    }
    try {
      const saved = instance ? await call('PATCH', `instances/${instance.id}`, body)
        : await call('POST', 'instances', body);
      context.go(`instances?id=${saved.id}`);
      if (instance) window.dispatchEvent(new HashChangeEvent('hashchange'));
    } catch (error) { context.fail(error); }
  });
  return box;
}
