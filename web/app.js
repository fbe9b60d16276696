// The medrec records workspace: sign-in, the session, the menus of the
// signed-in role and the hash router (#/search, #/register,
// #/patient/ID[/section...]). Health data lives only in memory (module
// state and the page); nothing goes to localStorage, sessionStorage,
// IndexedDB or cookies, and the URL carries only opaque resource ids.

import { api, setSessionHandlers, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { searchView } from './search.js';
import { registerView } from './patient-form.js';
import { chartView, forgetChart } from './chart.js';
import { accessPage } from './audit.js';
import { usersPage } from './admin.js';

// What each role is shown. The server enforces the policy
// (src/security/policy_default.json); this only keeps menus a role cannot
// use out of its way.
const ROLE_MENUS = {
  'records-technician': ['search', 'register', 'clinical', 'results', 'notes',
    'encounters', 'edit', 'history', 'add-clinical', 'add-result',
    'amend-note', 'access-log'],
  'admission-clerk': ['search', 'register', 'encounters', 'edit', 'history'],
  clinician: ['search', 'clinical', 'results', 'notes', 'encounters',
    'history', 'break-glass', 'add-clinical', 'add-result', 'amend-note'],
  coder: ['search', 'clinical', 'notes', 'encounters', 'history'],
  'lab-technician': ['search', 'results', 'add-result'],
  patient: ['own-chart', 'clinical', 'results', 'notes', 'encounters'],
  auditor: ['access-log'],
  admin: ['users'],
};

const ROLE_NAMES = {
  'records-technician': 'records technician',
  'admission-clerk': 'admission clerk',
  'lab-technician': 'lab technician',
  admin: 'administrator',
};

const state = {
  user: null, // {user, role, patient} from /auth/login or /auth/whoami
  idleMs: 0, // the server's idle time-out, when sign-in told us
  idleTimer: 0,
  view: null, // AbortController of the view on screen
  // Who was signed in when the session ended: only they come back to the
  // same place (the next person at a shared desk starts afresh).
  endedUser: null,
};

const $ = (sel) => document.querySelector(sel);

export function can(what) {
  return !!state.user && (ROLE_MENUS[state.user.role] || []).includes(what);
}

function notify(text) {
  const n = $('#notice');
  n.textContent = text;
  n.classList.toggle('shown', !!text);
  clearTimeout(notify.timer);
  if (text) notify.timer = setTimeout(() => notify(''), 8000);
}

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

/** Forget everything from the record that this page holds. */
function forgetAll() {
  if (state.view) state.view.abort();
  state.view = null;
  forgetChart();
  fill($('#main'));
  notify('');
}

// ---- the session --------------------------------------------------------

function resetIdleTimer() {
  clearTimeout(state.idleTimer);
  if (!state.user || !state.idleMs) return;
  // The server ends the session after idleMs without a request; clear the
  // screen then too, so no chart stays open on an unattended workstation.
  state.idleTimer = setTimeout(() => sessionEnded(
    'Your session ended after a period without activity. Sign in again ' +
    'to continue where you were.'), state.idleMs + 2000);
}

function sessionEnded(message) {
  if (!state.user) return;
  state.endedUser = state.user.user;
  state.user = null;
  clearTimeout(state.idleTimer);
  forgetAll();
  showSignIn(message || 'Your session ended (it was signed out or idle ' +
    'too long). Sign in again to continue where you were.');
}

setSessionHandlers({ ended: () => sessionEnded(), activity: resetIdleTimer });

async function signOut() {
  try {
    await api('/auth/logout', { method: 'POST', noSessionCheck: true });
  } catch {
    // Signed out locally either way; the server forgets idle sessions.
  }
  state.user = null;
  state.endedUser = null;
  clearTimeout(state.idleTimer);
  forgetAll();
  // The next person to sign in starts from the search, not this chart.
  window.history.replaceState(null, '', '#/');
  showSignIn('You have signed out.');
}

/** What a refused sign-in says: a locked account and too many failures
 * in the server's words, anything else without telling which part. */
function signInProblem(ex) {
  const said = ex.message ? ex.message[0].toUpperCase() + ex.message.slice(1)
    : '';
  if (ex instanceof ApiError && ex.status === 403 && /locked/i.test(ex.message)) {
    return said.replace(/\.?$/, '.');
  }
  if (ex instanceof ApiError && ex.status === 429) {
    return `${said.replace(/\.?$/, '.')} (The account is held after ` +
      'repeated wrong passwords or codes.)';
  }
  if (ex instanceof ApiError && ex.status === 403) {
    return 'The user name, password or code is not right.';
  }
  return ex.message;
}

function showSignIn(message) {
  $('#topbar').hidden = true;
  const err = h('p', { class: 'form-error', id: 'signin-error',
    role: 'alert' });
  const user = h('input', { id: 'signin-user', name: 'username',
    autocomplete: 'username', required: true, autocapitalize: 'none',
    spellcheck: 'false' });
  const pass = h('input', { id: 'signin-password', name: 'password',
    type: 'password', autocomplete: 'current-password', required: true });
  const code = h('input', { id: 'signin-code', name: 'code',
    inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 6,
    'aria-describedby': 'signin-code-hint' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'signin-form', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'signin-user' }, 'User name'), user),
    h('div', { class: 'field' },
      h('label', { for: 'signin-password' }, 'Password'), pass),
    h('div', { class: 'field' },
      h('label', { for: 'signin-code' }, 'Authentication code'), code,
      h('p', { class: 'hint', id: 'signin-code-hint' },
        'The 6-digit code from your authenticator app, if your account ' +
        'uses one.')),
    err, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    if (!user.value.trim() || !pass.value) {
      err.textContent = 'Enter your user name and password.';
      (user.value.trim() ? pass : user).focus();
      return;
    }
    button.disabled = true;
    try {
      const body = { username: user.value.trim(), password: pass.value };
      if (code.value.trim()) body.code = code.value.trim();
      const r = await api('/auth/login', { method: 'POST', body,
        noSessionCheck: true });
      pass.value = '';
      // The token is also in the body; the page never keeps it: the
      // HttpOnly cookie carries the session.
      state.user = { user: r.body.user, role: r.body.role,
        patient: r.body.patient || null };
      state.idleMs = (r.body.idle_timeout_s || 0) * 1000;
      if (state.endedUser && state.endedUser !== state.user.user) {
        window.history.replaceState(null, '', '#/');
      }
      state.endedUser = null;
      resetIdleTimer();
      route();
    } catch (ex) {
      pass.value = '';
      err.textContent = signInProblem(ex);
      pass.focus();
    } finally {
      button.disabled = false;
    }
  });
  fill($('#main'), h('section', { class: 'signin', 'aria-labelledby':
      'signin-title' },
    h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in to medrec'),
    message ? h('p', { class: 'session-message', id: 'session-message',
      role: 'alert' }, message) : null,
    form));
  user.focus();
}

// ---- menus and routes -----------------------------------------------------

function renderTopbar(section) {
  const items = [];
  if (can('search')) items.push(['search', '#/search', 'Find patient']);
  if (can('register')) items.push(['register', '#/register', 'Register patient']);
  if (can('access-log')) items.push(['access', '#/access', 'Who looked']);
  if (can('users')) items.push(['users', '#/users', 'Users']);
  if (can('own-chart') && state.user.patient) {
    items.push(['patient', `#/patient/${encodeURIComponent(
      state.user.patient.replace(/^Patient\//, ''))}`, 'My record']);
  }
  fill($('#nav'), h('ul', null, items.map(([key, href, label]) =>
    h('li', null, h('a', { href, 'aria-current': key === section ? 'page'
      : null }, label)))));
  fill($('#who'), 'Signed in as ', h('strong', null, state.user.user),
    ` (${ROLE_NAMES[state.user.role] || state.user.role})`);
  $('#topbar').hidden = false;
}

function parseHash() {
  const raw = window.location.hash.replace(/^#\/?/, '');
  const [path] = raw.split('?');
  let parts;
  try {
    parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  return parts;
}

function defaultSection() {
  if (can('search')) return '#/search';
  if (can('access-log')) return '#/access';
  if (can('users')) return '#/users';
  if (can('own-chart') && state.user.patient) {
    return `#/patient/${encodeURIComponent(
      state.user.patient.replace(/^Patient\//, ''))}`;
  }
  return '';
}

function route() {
  if (!state.user) return;
  if (state.view) state.view.abort();
  const ctrl = new AbortController();
  state.view = ctrl;
  const parts = parseHash();
  if (!parts.length && defaultSection()) {
    window.history.replaceState(null, '', defaultSection());
    parts.push(...parseHash());
  }
  const section = parts[0] || '';
  // A chart is kept in memory only while it is on screen.
  if (section !== 'patient') forgetChart();
  renderTopbar(section);
  const ctx = {
    signal: ctrl.signal,
    alive: () => !ctrl.signal.aborted && state.view === ctrl,
    can,
    user: state.user,
    navigate,
    notify,
  };
  const main = $('#main');
  fill(main);
  if (section === 'search' && can('search')) {
    searchView(main, ctx);
  } else if (section === 'register' && can('register')) {
    registerView(main, ctx);
  } else if (section === 'access' && can('access-log')) {
    accessPage(main, ctx, parts[1] || '');
  } else if (section === 'users' && can('users')) {
    usersPage(main, ctx);
  } else if (section === 'patient' && parts[1]) {
    chartView(main, ctx, parts[1], parts.slice(2));
  } else if (!defaultSection()) {
    fill(main, h('h1', { tabindex: '-1' }, 'Nothing here for your role yet'),
      h('p', null, `The workspace has no screens for the ` +
        `${ROLE_NAMES[state.user.role] || state.user.role} role yet; use ` +
        'the medrec command line.'));
  } else {
    fill(main, h('h1', { tabindex: '-1' }, 'Not found'),
      h('p', null, 'There is no such page. ',
        h('a', { href: defaultSection() }, 'Go to the start page')));
  }
  const heading = main.querySelector('h1');
  if (heading && document.activeElement !== heading &&
      !main.contains(document.activeElement)) heading.focus();
}

window.addEventListener('hashchange', route);

// "/" anywhere outside a field jumps to the patient search.
document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLElement && (t.isContentEditable ||
      ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
  if (!state.user || !can('search')) return;
  e.preventDefault();
  const q = document.getElementById('q');
  if (q) q.focus();
  else navigate('#/search');
});

async function start() {
  $('#signout').addEventListener('click', signOut);
  try {
    const r = await api('/auth/whoami', { noSessionCheck: true });
    state.user = { user: r.body.user, role: r.body.role,
      patient: r.body.patient || null };
    state.idleMs = (r.body.idle_timeout_s || 0) * 1000;
    resetIdleTimer();
    route();
  } catch {
    showSignIn('');
  }
}

start();
