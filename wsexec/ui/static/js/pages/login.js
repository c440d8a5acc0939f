// Log in with a basic-auth user and password, or a bearer token: checked with GET /whoami, kept in sessionStorage.

import { credentials } from '../api.js';
import { field, h, replace } from '../dom.js';

export function render(main, context, loggedIn) {
  const message = sessionStorage.getItem('wsexec.login-message');
  sessionStorage.removeItem('wsexec.login-message');
  const error = h('p', { class: 'error', id: 'login-error', hidden: !message }, message || '');
  const user = h('input', { name: 'user', id: 'login-user', autocomplete: 'username' });
  const password = h('input', { name: 'password', id: 'login-password', type: 'password',
    autocomplete: 'current-password' });
  const token = h('input', { name: 'token', id: 'login-token', type: 'password', autocomplete: 'off' });
  const form = h('form', { class: 'login', id: 'login-form' },
    h('h1', {}, 'Log in to wsexec'),
    field('User', user), field('Password', password),
    h('p', { class: 'muted' }, 'or'),
    field('Bearer token', token),
    h('button', { type: 'submit', id: 'login-submit' }, 'Log in'),
    error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (token.value) credentials.token(token.value.trim());
    else credentials.basic(user.value, password.value);
    try {
      await loggedIn();
    } catch (failure) {
      credentials.clear();
      error.textContent = failure.line || failure.message;
      error.hidden = false;
    }
  });
  replace(main, form);
  user.focus();
}
