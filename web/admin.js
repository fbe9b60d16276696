// Administration: the users, their roles, MFA and lock state
// (GET /auth/users), and locking, unlocking and turning MFA off
// (POST /auth/users/NAME/lock|unlock|mfa-off). Adding users and enabling
// MFA (which shows a secret) stay on the command line.

import { api, ApiError } from './api.js';
import { h, fill } from './dom.js';

const enc = encodeURIComponent;

function stateText(u) {
  if (u.locked) return 'Locked';
  if (u.held) {
    return `Held after ${u.failures} failed sign-in${u.failures === 1
      ? '' : 's'}`;
  }
  if (u.failures) {
    return `Active (${u.failures} failed sign-in${u.failures === 1
      ? '' : 's'})`;
  }
  return 'Active';
}

export function usersPage(main, ctx) {
  const status = h('p', { class: 'status', id: 'users-status', role: 'status',
    'aria-live': 'polite' });
  const out = h('div', { id: 'users', 'aria-busy': 'true' });
  fill(main, h('h1', { id: 'users-title', tabindex: '-1' }, 'Users'),
    h('p', null, 'Lock an account to stop its sign-ins at once; unlocking ' +
      'also clears a hold after failed sign-ins. Add users and enable MFA ' +
      'with ', h('code', null, 'medrec user'), ' on the server.'),
    status, out);

  async function change(u, what, focusAfter) {
    const label = { lock: 'locked', unlock: 'unlocked',
      'mfa-off': 'MFA turned off for' }[what];
    try {
      await api(`/auth/users/${enc(u.name)}/${what}`, { method: 'POST',
        signal: ctx.signal });
      if (!ctx.alive()) return;
      ctx.notify(what === 'mfa-off' ? `${label} ${u.name}.`
        : `${u.name} ${label}.`);
      await load(focusAfter);
    } catch (e) {
      if (!ctx.alive() || e.name === 'AbortError' ||
          (e instanceof ApiError && e.status === 401)) return;
      status.textContent = `Could not change ${u.name}: ${e.message}`;
    }
  }

  function row(u) {
    const locked = u.locked || u.held;
    const lockButton = h('button', { type: 'button', class: 'small',
      'data-action': locked ? 'unlock' : 'lock',
      'aria-label': `${locked ? 'Unlock' : 'Lock'} ${u.name}`,
      on: { click: () => change(u, locked ? 'unlock' : 'lock', u.name) } },
    locked ? 'Unlock' : 'Lock');
    let mfaButton = null;
    if (u.mfa) {
      // Two steps: a second press confirms.
      mfaButton = h('button', { type: 'button', class: 'small secondary',
        'data-action': 'mfa-off', 'aria-label': `Turn off MFA for ${u.name}` },
      'Turn off MFA');
      mfaButton.addEventListener('click', () => {
        if (mfaButton.dataset.confirm === 'yes') {
          change(u, 'mfa-off', u.name);
          return;
        }
        mfaButton.dataset.confirm = 'yes';
        mfaButton.textContent = 'Confirm: turn off MFA';
        mfaButton.setAttribute('aria-label',
          `Confirm: turn off MFA for ${u.name}`);
      });
    }
    return h('tr', { 'data-user': u.name, class: locked ? 'locked' : null },
      h('th', { scope: 'row' }, u.name),
      h('td', null, u.role),
      h('td', { class: 'mfa' }, u.mfa ? 'On' : 'Off'),
      h('td', { class: 'state' }, stateText(u)),
      h('td', { class: 'mono' }, u.patient || '—'),
      h('td', { class: 'actions-cell' }, lockButton, mfaButton));
  }

  async function load(focusUser) {
    out.setAttribute('aria-busy', 'true');
    try {
      const r = await api('/auth/users', { signal: ctx.signal });
      if (!ctx.alive()) return;
      const users = (r.body && r.body.users) || [];
      status.textContent = `${users.length} user${users.length === 1 ? ''
        : 's'}.`;
      fill(out, h('div', { class: 'scroll' }, h('table', { class: 'data users' },
        h('caption', { class: 'sr-only' }, 'Users'),
        h('thead', null, h('tr', null, ['User', 'Role', 'MFA', 'State',
          'Patient record', 'Actions'].map((c) => h('th', { scope: 'col' },
          c)))),
        h('tbody', null, users.map(row)))));
      if (focusUser) {
        const b = [...out.querySelectorAll('tr[data-user]')]
          .find((tr) => tr.dataset.user === focusUser);
        if (b) b.querySelector('button').focus();
      }
    } catch (e) {
      if (!ctx.alive() || e.name === 'AbortError' ||
          (e instanceof ApiError && e.status === 401)) return;
      status.textContent = e instanceof ApiError && e.status === 403
        ? `Not available to your role: ${e.message}`
        : `Could not load the users: ${e.message}`;
    } finally {
      out.setAttribute('aria-busy', 'false');
    }
  }
  load();
}
