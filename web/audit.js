// Who looked: the audit trail of a patient (GET /fhir/AuditEvent), for
// auditors and records technicians (the server decides). Filtered by user,
// action and date; sorted by the server (_sort) on any column, by clicking
// its header; emergency (break-the-glass) accesses marked.

import { fhirGet, entries, qs, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { fmtDate } from './fmt.js';

const enc = encodeURIComponent;

// medrec's audit actions (src/audit): what the action filter offers.
const ACTIONS = ['read', 'vread', 'search', 'history', 'create', 'update',
  'delete', 'export', 'disclose', 'merge', 'break-glass', 'login',
  'audit-search'];

// Columns: [server sort key, header, default direction].
const COLUMNS = [
  ['date', 'When', 'desc'],
  ['agent', 'User', 'asc'],
  ['action', 'Action', 'asc'],
  ['outcome', 'Outcome', 'asc'],
  ['entity', 'Record', 'asc'],
  ['patient', 'Patient', 'asc'],
  ['source', 'From', 'asc'],
];

const PAGE = 100;

function emergencyOf(ev) {
  const p = (ev.purposeOfEvent || []).find((x) => (x.coding || [])
    .some((c) => c.code === 'ETREAT'));
  return p ? (p.text || 'emergency access') : null;
}

function refsOf(ev) {
  const all = (ev.entity || []).filter((e) => e.what && e.what.reference);
  const patient = all.find((e) => e.role && e.role.code === '1') ||
    all.find((e) => /^Patient\//.test(e.what.reference));
  const record = all.find((e) => e !== patient) ||
    (patient && !(patient.role && patient.role.code === '1') ? patient : null);
  return { record: record ? record.what.reference : '',
    patient: patient ? patient.what.reference : '' };
}

/**
 * The access log into container. opts.patientId: fixed to that patient
 * (the chart's tab); otherwise a patient field is offered (auditors open
 * no charts) with opts.initialPatient.
 */
export function accessLogView(container, ctx, opts = {}) {
  const fixed = opts.patientId || '';
  const pfx = 'al';
  const patient = fixed ? null : h('input', { id: `${pfx}-patient`,
    autocomplete: 'off', spellcheck: 'false', value: opts.initialPatient || '',
    'aria-describedby': `${pfx}-patient-hint` });
  const user = h('input', { id: `${pfx}-user`, autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'none' });
  const action = h('select', { id: `${pfx}-action` },
    h('option', { value: '' }, 'Any action'),
    ACTIONS.map((a) => h('option', { value: a }, a)));
  const since = h('input', { id: `${pfx}-since`, type: 'date',
    'aria-describedby': `${pfx}-since-hint` });
  const emergency = h('input', { id: `${pfx}-emergency`, type: 'checkbox' });
  const apply = h('button', { type: 'submit' }, 'Show');
  const status = h('p', { class: 'status', id: `${pfx}-status`,
    role: 'status', 'aria-live': 'polite' });
  const out = h('div', { id: 'access-log', 'aria-busy': 'false' });
  const more = h('button', { type: 'button', class: 'more', hidden: true },
    'Show more entries');
  const state = { sort: 'date', dir: 'desc', count: PAGE, seq: 0 };

  const form = h('form', { class: 'filters', novalidate: true,
    'aria-label': 'Filter the access log' },
  patient ? h('div', { class: 'field' },
    h('label', { for: `${pfx}-patient` }, 'Patient'), patient,
    h('p', { class: 'hint', id: `${pfx}-patient-hint` },
      'The patient\u2019s id (Patient/… or the id alone); empty for ' +
      'everyone.')) : null,
  h('div', { class: 'field' }, h('label', { for: `${pfx}-user` }, 'User'),
    user),
  h('div', { class: 'field' }, h('label', { for: `${pfx}-action` }, 'Action'),
    action),
  h('div', { class: 'field' }, h('label', { for: `${pfx}-since` }, 'From date'),
    since, h('p', { class: 'hint', id: `${pfx}-since-hint` },
      'Entries on or after this day.')),
  h('div', { class: 'field check-field' }, h('span', { class: 'check' },
    emergency, h('label', { for: `${pfx}-emergency` },
      'Emergency access only'))),
  h('div', { class: 'field' }, apply));

  function query() {
    let p = fixed || (patient ? patient.value.trim() : '');
    if (p && !p.startsWith('Patient/')) p = `Patient/${p}`;
    return qs([['patient', p], ['agent', user.value.trim()],
      ['action', action.value], ['type', emergency.checked ? 'emergency' : ''],
      ['date', since.value ? `ge${since.value}` : ''],
      ['_sort', `${state.dir === 'desc' ? '-' : ''}${state.sort}`],
      ['_count', state.count]]);
  }

  function header() {
    return h('thead', null, h('tr', null, COLUMNS.map(([key, label, dflt]) => {
      const on = state.sort === key;
      const dir = on ? state.dir : null;
      return h('th', { scope: 'col', 'aria-sort': on ? (dir === 'desc'
        ? 'descending' : 'ascending') : 'none', 'data-sort': key },
      h('button', { type: 'button', class: 'sort',
        'aria-label': `${label}: sort ${on && dir === 'asc' ? 'descending'
          : on ? 'ascending' : dflt === 'desc' ? 'newest first'
            : 'ascending'}`,
        on: { click: () => {
          if (state.sort === key) {
            state.dir = state.dir === 'asc' ? 'desc' : 'asc';
          } else {
            state.sort = key;
            state.dir = dflt;
          }
          state.count = PAGE;
          load(key);
        } } }, label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' },
        on ? (dir === 'asc' ? ' ▲' : ' ▼') : '')));
    })));
  }

  function row(ev) {
    const agent = (ev.agent || [])[0] || {};
    const who = (agent.who && agent.who.display) || 'unknown';
    const role = ((agent.role || [])[0] || {}).text || '';
    const act = ((ev.subtype || [])[0] || {}).code ||
      (ev.type && ev.type.code) || '';
    const em = emergencyOf(ev);
    const { record, patient: pt } = refsOf(ev);
    const failed = ev.outcome && ev.outcome !== '0';
    return h('tr', { class: [em ? 'emergency' : '', failed ? 'failed' : '']
      .filter(Boolean).join(' ') || null, 'data-id': ev.id },
    h('td', { class: 'when' }, h('time', { datetime: ev.recorded || null },
      fmtDate(ev.recorded))),
    h('td', { class: 'user' }, h('strong', null, who),
      role ? h('span', { class: 'muted' }, ` (${role})`) : null),
    h('td', { class: 'action' }, act, em ? h('span', { class: 'badge emergency',
      title: em }, 'Emergency access') : null,
    em ? h('span', { class: 'em-reason' }, em) : null),
    h('td', { class: 'outcome' }, ev.outcomeDesc || (failed ? 'failed' : 'ok')),
    h('td', { class: 'mono' }, record || '—'),
    h('td', { class: 'mono' }, pt || '—'),
    h('td', { class: 'mono' }, (agent.network && agent.network.address) ||
      '—'));
  }

  async function load(focusSort) {
    const mine = ++state.seq;
    out.setAttribute('aria-busy', 'true');
    status.textContent = 'Loading the access log…';
    try {
      const b = await fhirGet(`/AuditEvent?${query()}`, ctx.signal);
      if (!ctx.alive() || mine !== state.seq) return;
      const list = entries(b);
      const total = typeof b.total === 'number' ? b.total : list.length;
      status.textContent = list.length
        ? `Showing ${list.length} of ${total} entries, sorted by ` +
          `${COLUMNS.find(([k]) => k === state.sort)[1].toLowerCase()} ` +
          `(${state.dir === 'desc' ? 'descending' : 'ascending'}).`
        : 'No entries match.';
      const t = h('table', { class: 'data access-log' },
        h('caption', { class: 'sr-only' }, 'Access log; column headers sort'),
        header(), h('tbody', null, list.map(row)));
      fill(out, list.length ? h('div', { class: 'scroll' }, t) : null);
      more.hidden = list.length >= total || state.count >= 1000;
      if (focusSort) {
        const b2 = out.querySelector(`th[data-sort="${focusSort}"] button`);
        if (b2) b2.focus();
      }
    } catch (e) {
      if (!ctx.alive() || e.name === 'AbortError' ||
          (e instanceof ApiError && e.status === 401)) return;
      fill(out);
      more.hidden = true;
      status.textContent = e instanceof ApiError && e.status === 403
        ? `Not available to your role: ${e.message}`
        : `Could not load the access log: ${e.message}`;
    } finally {
      if (mine === state.seq) out.setAttribute('aria-busy', 'false');
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    state.count = PAGE;
    if (patient && !fixed) {
      const id = patient.value.trim().replace(/^Patient\//, '');
      const want = id ? `#/access/${enc(id)}` : '#/access';
      if (window.location.hash !== want) {
        window.history.replaceState(null, '', want);
      }
    }
    load();
  });
  more.addEventListener('click', () => {
    state.count = Math.min(1000, state.count + PAGE);
    load();
  });
  fill(container, form, status, out, more);
  load();
}

/** The auditors' page: #/access[/PATIENT_ID]. */
export function accessPage(main, ctx, patientId) {
  const body = h('div');
  fill(main, h('h1', { id: 'access-title', tabindex: '-1' }, 'Who looked'),
    h('p', null, 'The access log: every read, search and change, with who, ' +
      'when and from where. Emergency (break-the-glass) accesses are marked.'),
    body);
  accessLogView(body, ctx, { initialPatient: patientId || '' });
}
