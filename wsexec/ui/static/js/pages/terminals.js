// Terminals (websh): open a shell on an instance, list the sessions, play recordings.

import { h, replace } from '../dom.js';

export async function render(main) {
  replace(main, h('h1', {}, 'Terminals'), h('p', { class: 'muted' }, 'Web terminals are not available yet.'));
}
