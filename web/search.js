// Find a patient: results as you type (debounced fetch, stale answers
// dropped), by name prefixes in any order, birth date, MRN or phone.
//
// The search text is never put in the URL (it would land in the browser's
// history): only the chart's opaque id is.

import { fhirGet, getPath, entries, linkPath, qs, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { nameOf, age, sexLabel, mrnOf, fmtDate, parseUserDate,
  localeDateExample, MRN_SYSTEM } from './fmt.js';

const PAGE = 20;
const ELEMENTS = 'name,gender,birthDate,identifier,deceasedBoolean,' +
  'deceasedDateTime';

/** The FHIR query for what was typed: {query, what} or {hint}. */
export function queryFor(text) {
  const t = text.trim();
  if (!t) return { hint: '' };
  const mrn = /^(?:mrn[:\s#]*)?(\d{8})$/i.exec(t);
  if (mrn) {
    return { what: `MRN ${mrn[1]}`,
      query: [['identifier', `${MRN_SYSTEM}|${mrn[1]}`]] };
  }
  const date = parseUserDate(t);
  if (date) return { what: `birth date ${fmtDate(date)}`,
    query: [['birthdate', date]] };
  const digits = t.replace(/\D/g, '');
  if (/^[+(\d][\d\s().-]*$/.test(t) && digits.length >= 7) {
    // Phone numbers are matched exactly as stored; try the common ways of
    // writing the same number (see the reply: a normalised phone index
    // would do better).
    const forms = new Set([t, digits]);
    const d10 = digits.length === 11 && digits[0] === '1'
      ? digits.slice(1) : digits;
    if (d10.length === 10) {
      const [a, b, c] = [d10.slice(0, 3), d10.slice(3, 6), d10.slice(6)];
      forms.add(`${a}-${b}-${c}`);
      forms.add(`+1-${a}-${b}-${c}`);
      forms.add(`(${a}) ${b}-${c}`);
      forms.add(`+1${d10}`);
    }
    return { what: `phone ${t}`, query: [['phone',
      [...forms].map((f) => f.replace(/,/g, '\\,')).join(',')]] };
  }
  const words = t.split(/[\s,]+/).filter(Boolean);
  if (/\d/.test(t)) {
    return { hint: `Type a name, a birth date (YYYY-MM-DD or ` +
      `${localeDateExample}), an 8-digit MRN or a phone number.` };
  }
  if (t.replace(/[\s,]/g, '').length < 2) {
    return { hint: 'Type at least two letters of a name.' };
  }
  return { what: `name “${t}”`,
    query: words.map((w) => ['name', w]).concat([['_sort', 'family,given']]) };
}

function resultRow(p, ctx) {
  const href = `#/patient/${encodeURIComponent(p.id)}`;
  const tr = h('tr', null,
    h('td', null, h('a', { href, class: 'patient-link' }, nameOf(p))),
    h('td', { class: 'num' }, age(p.birthDate, p.deceasedDateTime)),
    h('td', null, sexLabel(p.gender)),
    h('td', null, fmtDate(p.birthDate)),
    h('td', { class: 'mono' }, mrnOf(p)));
  if (p.deceasedDateTime || p.deceasedBoolean) {
    tr.cells[1].append(' ', h('span', { class: 'badge' }, 'deceased'));
  }
  // A click anywhere on the row opens the chart too (the link is what the
  // keyboard reaches).
  tr.addEventListener('click', (e) => {
    if (!(e.target instanceof HTMLAnchorElement)) ctx.navigate(href);
  });
  return tr;
}

export function searchView(main, ctx) {
  const input = h('input', { id: 'q', type: 'search', autocomplete: 'off',
    spellcheck: 'false', 'aria-describedby': 'q-hint',
    'aria-controls': 'search-results' });
  const status = h('p', { id: 'search-status', class: 'status',
    role: 'status', 'aria-live': 'polite' });
  const results = h('div', { id: 'search-results' });
  const more = h('button', { type: 'button', class: 'more', hidden: true },
    'Show more patients');
  let timer = 0;
  let ctrl = null;
  let seq = 0;
  let next = null;
  let shown = 0;
  let tbody = null;

  fill(main, h('section', { class: 'search', 'aria-labelledby': 'search-title' },
    h('h1', { id: 'search-title', tabindex: '-1' }, 'Find a patient'),
    h('div', { class: 'field search-field' },
      h('label', { for: 'q' }, 'Name, birth date, MRN or phone'),
      input,
      h('p', { class: 'hint', id: 'q-hint' },
        `Results appear as you type. Names match from the start of any ` +
        `name, in any order (“riv ana”). Dates as YYYY-MM-DD or ` +
        `${localeDateExample}. Press ↓ to reach the results.`)),
    status, results, more));

  function table() {
    tbody = h('tbody');
    return h('table', { class: 'results' },
      h('caption', { class: 'sr-only' }, 'Patients found'),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Name'),
        h('th', { scope: 'col', class: 'num' }, 'Age'),
        h('th', { scope: 'col' }, 'Sex'),
        h('th', { scope: 'col' }, 'Birth date'),
        h('th', { scope: 'col' }, 'MRN'))),
      tbody);
  }

  function show(bundle, append) {
    const list = entries(bundle).filter((r) => r.resourceType === 'Patient');
    if (!append) {
      shown = 0;
      fill(results, list.length ? table() : null);
    }
    for (const p of list) tbody.append(resultRow(p, ctx));
    shown += list.length;
    next = linkPath(bundle, 'next');
    more.hidden = !next;
    return list;
  }

  async function run(openSingle) {
    clearTimeout(timer);
    const mine = ++seq;
    if (ctrl) ctrl.abort();
    const q = queryFor(input.value);
    if (!q.query) {
      fill(results);
      more.hidden = true;
      status.textContent = q.hint;
      return;
    }
    ctrl = new AbortController();
    ctx.signal.addEventListener('abort', () => ctrl.abort(), { once: true });
    status.textContent = 'Searching…';
    results.setAttribute('aria-busy', 'true');
    try {
      const bundle = await fhirGet(`/Patient?${qs(q.query.concat(
        [['_count', PAGE], ['_elements', ELEMENTS]]))}`, ctrl.signal);
      if (mine !== seq || !ctx.alive()) return;
      const list = show(bundle, false);
      const total = typeof bundle.total === 'number' ? bundle.total : null;
      status.textContent = list.length
        ? `${total ?? list.length}${next && total === null ? '+' : ''} ` +
          `patient${(total ?? list.length) === 1 ? '' : 's'} found for ${q.what}.`
        : `No patient found for ${q.what}.`;
      if (!list.length && ctx.can('register')) {
        fill(results, h('p', null, h('a', { href: '#/register' },
          'Register a new patient')));
      }
      if (openSingle && list.length === 1) {
        ctx.navigate(`#/patient/${encodeURIComponent(list[0].id)}`);
      }
    } catch (e) {
      if (mine !== seq || !ctx.alive() || e.name === 'AbortError') return;
      if (e instanceof ApiError && e.status === 401) return;
      fill(results);
      status.textContent = `The search failed: ${e.message}`;
    } finally {
      if (mine === seq) results.removeAttribute('aria-busy');
    }
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => run(false), 250);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      // Search now; with a single match, open it.
      e.preventDefault();
      run(true);
    } else if (e.key === 'ArrowDown') {
      const first = results.querySelector('a');
      if (first) {
        e.preventDefault();
        first.focus();
      }
    }
  });
  // Arrow keys move between result links; Escape goes back to the box.
  results.addEventListener('keydown', (e) => {
    const links = [...results.querySelectorAll('a.patient-link')];
    const i = links.indexOf(document.activeElement);
    if (i < 0) return;
    if (e.key === 'ArrowDown' && i + 1 < links.length) links[i + 1].focus();
    else if (e.key === 'ArrowUp') (i ? links[i - 1] : input).focus();
    else if (e.key === 'Escape') input.focus();
    else return;
    e.preventDefault();
  });
  more.addEventListener('click', async () => {
    if (!next) return;
    more.disabled = true;
    try {
      const before = shown;
      const bundle = await getPath(next, ctx.signal);
      if (!ctx.alive()) return;
      show(bundle, true);
      const links = results.querySelectorAll('a.patient-link');
      if (links[before]) links[before].focus();
    } catch (e) {
      if (ctx.alive() && e.name !== 'AbortError' && e.status !== 401) {
        status.textContent = `Could not load more: ${e.message}`;
      }
    } finally {
      more.disabled = false;
    }
  });
}
