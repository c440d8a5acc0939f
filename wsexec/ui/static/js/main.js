// The console's shell: log in, route by #fragment to a page, show errors as one line, go back to login on a 401.

import { ApiError, credentials, get } from './api.js';
import { h, replace } from './dom.js';
import * as audit from './pages/audit.js';
import * as batch from './pages/batch.js';
import * as instances from './pages/instances.js';
import * as login from './pages/login.js';
import * as run from './pages/run.js';
import * as task from './pages/task.js';
import * as tasks from './pages/tasks.js';
import * as terminals from './pages/terminals.js';

const RANK = { viewer: 1, operator: 2, admin: 3 };

const ROUTES = [  // [pattern, page, role the page is for, nav label]
  [/^instances$/, instances, 'viewer', 'Instances'],
  [/^tasks$/, tasks, 'viewer', 'Tasks'],
  [/^tasks\/(\d+)$/, task, 'viewer'],
  [/^run$/, run, 'operator', 'Run'],
  [/^batches\/([\w.:-]+)$/, batch, 'viewer'],
  [/^terminals$/, terminals, 'viewer', 'Terminals'],
  [/^terminals\/([\w-]+)$/, terminals, 'viewer'],
  [/^audit$/, audit, 'admin', 'Audit'],
];

const state = { user: null, cleanup: null };

const context = {
  get user() { return state.user; },
  can(role) { return state.user !== null && RANK[state.user.role] >= RANK[role]; },
  fail(error) { showError(error); },
  ok() { showError(null); },
  go(fragment) { location.hash = `#/${fragment}`; },
  params() { return new URLSearchParams(location.hash.split('?')[1] || ''); },
};

function showError(error) {
  const line = document.getElementById('error');
  if (!error) {
    line.hidden = true;
    return;
  }
  if (error.name === 'AbortError') return;
  if (error instanceof ApiError && error.status === 401) {  // wrong or expired credentials: log in again
    credentials.clear();
    state.user = null;
    sessionStorage.setItem('wsexec.login-message', `${error.line}: log in again`);
    location.hash = '#/login';
    return;
  }
  line.textContent = error instanceof ApiError ? error.line : `error: ${error.message}`;
  line.hidden = false;
}

function navigation() {
  const nav = replace(document.getElementById('nav'));
  for (const [pattern, , role, label] of ROUTES) {
    if (label && context.can(role)) {
      nav.append(h('a', { href: `#/${pattern.source.slice(1, -1)}`, dataset: { page: label.toLowerCase() } }, label));
    }
  }
  const who = document.getElementById('who');
  who.textContent = state.user ? `${state.user.name} (${state.user.role})` : '';
  document.getElementById('logout').hidden = !state.user;
}

async function route() {
  if (state.cleanup) state.cleanup();
  state.cleanup = null;
  showError(null);
  const main = document.getElementById('main');
  const path = location.hash.replace(/^#\/?/, '').split('?')[0];
  if (!credentials.header || path === 'login') {
    state.user = null;
    navigation();
    login.render(main, context, async () => {
      state.user = await get('whoami');
      const target = path && path !== 'login' ? location.hash : '#/tasks';  // where the user was going
      if (location.hash === target) route();
      else location.hash = target;
    });
    return;
  }
  try {
    if (!state.user) state.user = await get('whoami');
  } catch (error) {
    showError(error);
    return;
  }
  navigation();
  for (const [pattern, page, role, label] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('current', link.dataset.page === (label || '').toLowerCase());
    }
    if (!context.can(role)) {
      replace(main, h('p', { class: 'muted' }, `This page is for the ${role} role and above.`));
      return;
    }
    const controller = new AbortController();
    state.cleanup = () => controller.abort();
    replace(main);
    try {
      await page.render(main, context, match.slice(1), controller.signal);
    } catch (error) {
      showError(error);
    }
    return;
  }
  location.hash = '#/tasks';
}

document.getElementById('logout').addEventListener('click', () => {
  credentials.clear();
  state.user = null;
  location.hash = '#/login';
});
window.addEventListener('hashchange', route);
window.addEventListener('pagehide', () => { if (state.cleanup) state.cleanup(); });  // its streams end with the page
window.addEventListener('unhandledrejection', (event) => showError(event.reason));
route();
