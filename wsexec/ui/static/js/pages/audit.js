// The audit log (admins): who changed what, when and from where, newest first.

import { get, query } from '../api.js';
import { h, replace, when } from '../dom.js';

export async function render(main, context, _match, signal) {
  const page = Number(context.params().get('page') || 1);
  const list = await get(`audit${query({ page, page_size: 50 })}`, { signal });
  const link = (to, text) => h('a', { href: `#/audit${query({ page: to })}` }, text);
  replace(main, h('h1', {}, 'Audit log'),
    h('table', { class: 'grid', id: 'audit-rows' },
      h('thead', {}, h('tr', {}, ['time', 'user', 'role', 'action', 'target', 'from', 'detail']
        .map((name) => h('th', {}, name)))),
      h('tbody', {}, list.results.map((entry) => h('tr', {},
        h('td', {}, when(entry.time)), h('td', {}, entry.user), h('td', {}, entry.role),
        h('td', {}, entry.action), h('td', {}, entry.target), h('td', {}, entry.ip || ''),
        h('td', {}, h('code', {}, entry.detail === null ? '' : JSON.stringify(entry.detail))))))),
    h('p', { class: 'pager' }, page > 1 ? link(page - 1, '← newer') : '', ` page ${page}, ${list.count} entries `,
      list.next ? link(page + 1, 'older →') : ''));
}
