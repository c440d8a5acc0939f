// The notes on one instance: pinned first; anyone may write one, its author (or an admin, if public) remove it.

import { call, get, query } from '../api.js';
import { field, h, replace, when } from '../dom.js';

export async function notes(context, instance, signal) {
  const section = h('section', { class: 'notes', id: 'instance-notes' });
  async function load() {
    const list = await get(`notes${query({ instance, page_size: 100 })}`, { signal });
    const content = h('textarea', { name: 'content', id: 'note-content', rows: 2, cols: 60, maxlength: 512,
      required: true });
    const pinned = h('input', { type: 'checkbox', name: 'pinned' });
    const hidden = h('input', { type: 'checkbox', name: 'private' });
    const form = h('form', { id: 'note-form' }, field('New note', content),
      h('p', { class: 'checks' }, h('label', {}, pinned, ' pinned'), h('label', {}, hidden, ' private (only you see it)'),
        h('button', { type: 'submit' }, 'Add note')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await call('POST', 'notes', { instance, content: content.value, pinned: pinned.checked,
          private: hidden.checked });
        await load();
      } catch (error) { context.fail(error); }
    });
    replace(section, h('h3', {}, 'Notes'),
      h('ul', {}, list.results.map((note) => {
        const remove = h('button', { type: 'button', class: 'small' }, 'Delete');
        remove.addEventListener('click', async () => {
          try {
            await call('DELETE', `notes/${note.id}`);
            await load();
          } catch (error) { context.fail(error); }
        });
        const mine = note.author === context.user.name;
        return h('li', { class: note.pinned ? 'pinned' : '' },
          note.pinned ? '📌 ' : '', note.private ? '(private) ' : '',
          h('span', { class: 'note-content' }, note.content),
          h('span', { class: 'muted' }, ` — ${note.author}, ${when(note.updated_at)} `),
          mine || (context.can('admin') && !note.private) ? remove : '');
      })),
      list.results.length ? '' : h('p', { class: 'muted' }, 'No notes.'),
      form);
  }
  await load();
  return section;
}
