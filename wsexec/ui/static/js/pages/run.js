// Run a script on one instance or on every ACTIVE instance of a tag; then its task page, or the batch's grid.

import { call, get, query } from '../api.js';
import { field, formValues, h, replace, select } from '../dom.js';

export async function render(main, context, _match, signal) {
  const instances = (await get(`instances${query({ state: 'ACTIVE', page_size: 100 })}`, { signal })).results;
  const tags = [...new Set(instances.map((instance) => instance.tag))].sort();
  const target = select('target', [['instance', 'one instance'], ['tag', 'every ACTIVE instance of a tag']]);
  const instance = field('Instance', select('instance', instances.map((i) =>
    [String(i.id), `${i.id}: ${i.ip}:${i.port} (${i.tag})`])));
  const tag = field('Target tag', select('target_tag', tags.map((t) => [t, t])));
  const form = h('form', { class: 'run', id: 'run-form' },
    field('Name', h('input', { name: 'name', value: 'console', required: true })),
    field('Tag (of the task)', h('input', { name: 'tag', value: 'console', required: true })),
    field('Run on', target), instance, tag,
    field('Script', h('textarea', { name: 'script', id: 'run-script', rows: 8, cols: 80, required: true,
      spellcheck: false })),
    field('Login user (optional)', h('input', { name: 'user' })),
    field('Timeout, seconds (optional)', h('input', { name: 'timeout', type: 'number', min: 1 })),
    h('button', { type: 'submit', id: 'run-submit' }, 'Run'));
  const pick = () => {
    instance.hidden = target.value !== 'instance';
    tag.hidden = target.value !== 'tag';
  };
  target.addEventListener('change', pick);
  pick();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = formValues(form);
    const body = { name: values.name, tag: values.tag, script: form.elements.script.value };
    if (values.user) body.user = values.user;
    if (values.timeout) body.timeout = Number(values.timeout);
    if (values.target === 'tag') body.target = { tag: values.target_tag };
    else body.instance = Number(values.instance);
    try {
      const created = await call('POST', 'tasks', body);
      context.go(Array.isArray(created) ? `batches/${created[0].batch}` : `tasks/${created.id}`);
    } catch (error) { context.fail(error); }
  });
  replace(main, h('h1', {}, 'Run a script'),
    instances.length ? form : h('p', { class: 'muted' }, 'No ACTIVE instance: declare one first.'));
}
