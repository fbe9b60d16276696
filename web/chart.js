// The chart: a header that stays (name, age, sex, MRN, allergies), then a
// section: summary (problems, medications, allergies, recent encounters),
// results (table, abnormal flags, trend plot), encounters (timeline),
// notes, demographics (correction with a reason) and history.
//
// Every list is a targeted search with a page size, so opening a chart
// costs the same few requests whatever the size of the record; longer
// lists page ("Show more", following the server's next link).

import { api, fhirGet, getPath, entries, linkPath, qs, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { nameOf, age, sexLabel, mrnOf, fmtDate, fmtDay, ccText, codeIn,
  ICD10CM, obsValue, obsUnit, refRange, interpretation, effectiveOf,
  refText, timeOf } from './fmt.js';
import { trendPlot } from './plot.js';
import { editForm } from './patient-form.js';
import { historyView } from './history.js';
import { addForm, amendForm, attachmentText, KINDS } from './record-forms.js';
import { accessLogView } from './audit.js';

// The chart on screen, kept in memory while moving between its sections;
// forgotten at sign-out, session end and when another chart opens.
let cache = null;
// A result just added: the results section opens its trend once.
let pendingTrend = null;

export function forgetChart() {
  cache = null;
  pendingTrend = null;
}

const enc = encodeURIComponent;

const SECTIONS = [
  ['summary', 'Summary', null],
  ['results', 'Results', 'results'],
  ['encounters', 'Encounters', 'encounters'],
  ['notes', 'Notes', 'notes'],
  ['demographics', 'Demographics', 'edit'],
  ['history', 'History', 'history'],
  ['access', 'Access log', 'access-log'],
];

// Sections reached from a section, not from the tabs: [key, need].
const EXTRA = [['add', null], ['amend', 'amend-note']];

// ---- errors and emergency access ------------------------------------------

function isQuiet(ctx, e) {
  return !ctx.alive() || e.name === 'AbortError' ||
    (e instanceof ApiError && e.status === 401);
}

function breakGlassForm(ctx, patientId, onOpened) {
  const reason = h('textarea', { id: 'bg-reason', rows: 3, maxlength: 400,
    'aria-required': 'true', 'aria-describedby': 'bg-hint bg-error' });
  const err = h('p', { class: 'field-error', id: 'bg-error' });
  const button = h('button', { type: 'submit', class: 'danger' },
    'Open with emergency access');
  const form = h('form', { class: 'break-glass', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'bg-reason' }, 'Reason for emergency access',
        h('span', { class: 'req' }, ' (required)')),
      reason,
      h('p', { class: 'hint', id: 'bg-hint' }, '10 to 400 characters. ' +
        'Access is granted for 60 minutes, recorded with your reason and ' +
        'reviewed.')),
    err, button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const why = reason.value.trim();
    if ([...why].length < 10) {
      err.textContent = 'Give a reason of at least 10 characters.';
      reason.setAttribute('aria-invalid', 'true');
      reason.focus();
      return;
    }
    reason.removeAttribute('aria-invalid');
    err.textContent = '';
    button.disabled = true;
    try {
      const r = await api('/auth/break-glass', { method: 'POST',
        body: { patient: `Patient/${patientId}`, reason: why },
        signal: ctx.signal });
      if (!ctx.alive()) return;
      const until = r.body && r.body.until
        ? new Intl.DateTimeFormat(undefined, { timeStyle: 'short' })
          .format(new Date(r.body.until)) : '';
      ctx.notify(`Emergency access granted${until ? ` until ${until}` : ''}; ` +
        'this access is recorded.');
      forgetChart();
      onOpened();
    } catch (ex) {
      if (isQuiet(ctx, ex)) return;
      err.textContent = ex.message;
      reason.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** What to show instead of data the server refused or could not give. */
function problemBox(ctx, patientId, e, retry) {
  if (e instanceof ApiError && e.restricted) {
    return h('div', { class: 'restricted', role: 'region',
      'aria-label': 'Restricted record' },
    h('h2', null, 'Restricted record'),
    h('p', null, e.message),
    ctx.can('break-glass') ? breakGlassForm(ctx, patientId, retry)
      : h('p', null, 'Your role cannot open restricted records; a ' +
        'clinician can, with emergency access.'));
  }
  if (e instanceof ApiError && e.status === 403) {
    return h('p', { class: 'muted' }, `Not available to your role: ${e.message}`);
  }
  if (e instanceof ApiError && (e.status === 404 || e.status === 410)) {
    return h('p', { class: 'muted' }, 'Not found: ', e.message);
  }
  return h('p', { class: 'error-text' }, `Could not load: ${e.message} `,
    retry ? h('button', { type: 'button', class: 'small',
      on: { click: retry } }, 'Try again') : null);
}

// ---- small building blocks ----------------------------------------------

function table(caption, columns, rows) {
  return h('table', { class: 'data' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', null, h('tr', null, columns.map((c) =>
      h('th', { scope: 'col', class: c.cls || null }, c.label)))),
    h('tbody', null, rows));
}

function cell(text, cls) {
  return h('td', { class: cls || null }, text || '—');
}

function block(title, id) {
  const body = h('div', { class: 'block-body' },
    h('p', { class: 'muted' }, 'Loading…'));
  const el = h('section', { class: 'block', id, 'aria-labelledby': `${id}-h`,
    'aria-busy': 'true' }, h('h2', { id: `${id}-h` }, title), body);
  return { el, body };
}

/**
 * Fills body with the pages of a search: first page from path, then a
 * "Show more" button while the server has a next link. render(list)
 * returns the rows/elements to append to the container made by make().
 */
async function paged(ctx, body, path, { make, render, empty, noun }) {
  const bundle = await fhirGet(path, ctx.signal);
  if (!ctx.alive()) return;
  const list = entries(bundle);
  if (!list.length) {
    fill(body, h('p', { class: 'muted' }, empty));
    return;
  }
  const { root, into } = make();
  const count = h('p', { class: 'count muted' });
  const more = h('button', { type: 'button', class: 'more' },
    `Show more ${noun}`);
  let shown = 0;
  let next = null;
  const add = (b) => {
    const items = entries(b);
    into.append(...render(items));
    shown += items.length;
    next = linkPath(b, 'next');
    more.hidden = !next;
    count.textContent = typeof b.total === 'number'
      ? `Showing ${shown} of ${bundle.total} ${noun}.` : `Showing ${shown} ${noun}.`;
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      const b = await getPath(next, ctx.signal);
      if (ctx.alive()) add(b);
    } catch (e) {
      if (!isQuiet(ctx, e)) count.textContent = `Could not load more: ${e.message}`;
    } finally {
      more.disabled = false;
    }
  });
  fill(body, count, root, more);
  add(bundle);
}

// ---- the header -------------------------------------------------------------

function activeAllergy(a) {
  const clin = codeIn(a.clinicalStatus,
    'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical') ||
    ccText(a.clinicalStatus);
  const ver = codeIn(a.verificationStatus,
    'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification') ||
    ccText(a.verificationStatus);
  return !['inactive', 'resolved'].includes(clin) &&
    !['entered-in-error', 'refuted'].includes(ver);
}

function allergyText(a) {
  const what = ccText(a.code) || 'Unnamed allergy';
  const crit = a.criticality === 'high' ? ' (high criticality)' : '';
  return what + crit;
}

function header(ctx, p, allergiesP) {
  const facts = [
    ['Age', age(p.birthDate, p.deceasedDateTime) || '—'],
    ['Sex', sexLabel(p.gender)],
    ['Born', fmtDate(p.birthDate) || '—'],
    ['MRN', mrnOf(p) || '—'],
  ];
  if (p.deceasedDateTime || p.deceasedBoolean) {
    facts.push(['Died', p.deceasedDateTime ? fmtDay(p.deceasedDateTime) : 'yes']);
  }
  const strip = h('p', { class: 'allergy-strip', id: 'allergy-strip',
    'aria-live': 'polite' }, h('strong', null, 'Allergies: '));
  const list = h('span', { id: 'allergy-list' });
  strip.append(list);
  if (!allergiesP) {
    list.textContent = 'not shown to your role';
    strip.classList.add('muted');
  } else {
    list.textContent = 'checking…';
    allergiesP.then((all) => {
      if (!ctx.alive()) return;
      const active = all.filter(activeAllergy);
      if (!active.length) {
        list.textContent = 'none recorded';
        return;
      }
      strip.classList.add('has-allergies');
      list.textContent = active.map(allergyText).join('; ');
    }, (e) => {
      if (!isQuiet(ctx, e)) list.textContent = `could not be checked (${e.message})`;
    });
  }
  return h('header', { class: 'chart-header' },
    h('h1', { id: 'chart-name', tabindex: '-1' }, nameOf(p)),
    h('dl', { class: 'facts' }, facts.map(([k, v]) =>
      h('div', null, h('dt', null, k), h('dd', null, v)))),
    strip);
}

function tabs(ctx, id, current) {
  return h('nav', { class: 'tabs', 'aria-label': 'Chart sections' },
    h('ul', null, SECTIONS.filter(([, , need]) => !need || ctx.can(need))
      .map(([key, label]) => h('li', null, h('a', {
        href: `#/patient/${enc(id)}${key === 'summary' ? '' : `/${key}`}`,
        'aria-current': key === current ? 'page' : null }, label)))));
}

// ---- summary ----------------------------------------------------------------

function conditionRows(list) {
  const since = (c) => c.onsetDateTime || (c.onsetPeriod && c.onsetPeriod.start)
    || c.recordedDate || '';
  return list
    .filter((c) => codeIn(c.verificationStatus,
      'http://terminology.hl7.org/CodeSystem/condition-ver-status') !==
      'entered-in-error')
    .sort((a, b) => (timeOf(since(b)) || 0) - (timeOf(since(a)) || 0))
    .map((c) => h('tr', null,
      cell(ccText(c.code) || 'Unnamed problem'),
      cell(codeIn(c.code, ICD10CM), 'mono'),
      cell(fmtDay(since(c))),
      cell(ccText(c.clinicalStatus))));
}

function medicationRows(list) {
  return list.map((m) => h('tr', null,
    cell(ccText(m.medicationCodeableConcept) ||
      refText(m.medicationReference) || 'Unnamed medication'),
    cell((m.dosageInstruction || []).map((d) => d.text).filter(Boolean)
      .join('; ')),
    cell(fmtDay(m.authoredOn)),
    cell(m.status)));
}

function allergyRows(list) {
  return list.filter(activeAllergy).map((a) => h('tr', null,
    cell(ccText(a.code) || 'Unnamed allergy'),
    cell((a.reaction || []).map((r) => ccText(r.manifestation))
      .filter(Boolean).join('; ')),
    cell(a.criticality),
    cell(fmtDay(a.onsetDateTime || a.recordedDate))));
}

function encounterRows(id, list) {
  return list.map((e) => h('tr', null,
    cell(fmtDay(e.period && e.period.start)),
    cell(ccText(e.type) || (e.class && (e.class.display || e.class.code))),
    cell(e.class && (e.class.display || e.class.code)),
    cell(e.status)));
}

function addLink(ctx, id, kind, label) {
  return ctx.can(kind === 'result' ? 'add-result' : 'add-clinical')
    ? h('p', null, h('a', { href: `#/patient/${enc(id)}/add/${kind}`,
      class: 'add-link' }, label)) : null;
}

function summary(ctx, id, loads) {
  const root = h('div', { id: 'chart-summary', class: 'summary',
    'aria-busy': 'true', 'data-ready': 'false' });
  const jobs = [];
  const add = (key, title, promise, columns, rows, emptyText, more) => {
    const b = block(title, `sum-${key}`);
    root.append(b.el);
    jobs.push(promise.then((bundle) => {
      if (!ctx.alive()) return;
      const list = Array.isArray(bundle) ? bundle : entries(bundle);
      const trs = rows(list);
      const total = !Array.isArray(bundle) && typeof bundle.total === 'number'
        ? bundle.total : trs.length;
      fill(b.body, trs.length ? table(title, columns, trs)
        : h('p', { class: 'muted' }, emptyText),
      total > list.length ? h('p', { class: 'muted' },
        `Showing ${list.length} of ${total}.`) : null,
      more || null);
    }, (e) => {
      if (!isQuiet(ctx, e)) fill(b.body, problemBox(ctx, id, e, null));
    }).finally(() => b.el.setAttribute('aria-busy', 'false')));
  };
  if (loads.problems) {
    add('problems', 'Active problems', loads.problems, [
      { label: 'Problem' }, { label: 'ICD-10-CM' }, { label: 'Since' },
      { label: 'Status' }], conditionRows, 'No active problems recorded.',
    addLink(ctx, id, 'problem', 'Add a problem'));
  }
  if (loads.meds) {
    add('medications', 'Current medications', loads.meds, [
      { label: 'Medication' }, { label: 'Dosage' }, { label: 'Prescribed' },
      { label: 'Status' }], medicationRows, 'No current prescriptions.',
    addLink(ctx, id, 'prescription', 'Add a prescription'));
  }
  if (loads.allergies) {
    add('allergies', 'Allergies and intolerances', loads.allergies, [
      { label: 'Substance' }, { label: 'Reaction' }, { label: 'Criticality' },
      { label: 'Since' }], allergyRows, 'No allergies recorded.',
    addLink(ctx, id, 'allergy', 'Add an allergy'));
  }
  if (loads.encounters) {
    add('encounters', 'Recent encounters', loads.encounters, [
      { label: 'Date' }, { label: 'Type' }, { label: 'Class' },
      { label: 'Status' }], (l) => encounterRows(id, l),
    'No encounters recorded.', h('p', null, h('a', {
      href: `#/patient/${enc(id)}/encounters` }, 'All encounters')));
  }
  if (!jobs.length) {
    root.append(h('p', { class: 'muted' },
      'There is no summary for your role; see the sections above.'));
  }
  Promise.allSettled(jobs).then(() => {
    root.setAttribute('aria-busy', 'false');
    root.dataset.ready = 'true';
  });
  return root;
}

/** The summary's searches, started together with the patient read. */
function summaryLoads(ctx, id) {
  const get = (path) => fhirGet(path, ctx.signal);
  const pid = enc(id);
  const loads = {};
  if (ctx.can('clinical')) {
    loads.problems = get(`/Condition?patient=${pid}&clinical-status=` +
      'active,recurrence,relapse&_count=100');
    loads.meds = get(`/MedicationRequest?patient=${pid}&status=` +
      'active,on-hold&_count=100');
  }
  if (ctx.can('encounters')) {
    loads.encounters = get(`/Encounter?patient=${pid}&_sort=-date&_count=5`);
  }
  return loads;
}

// ---- results ----------------------------------------------------------------

const CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';

function resultsSection(ctx, id, body) {
  const select = h('select', { id: 'res-category' },
    h('option', { value: '' }, 'All results'),
    h('option', { value: 'laboratory' }, 'Laboratory'),
    h('option', { value: 'vital-signs' }, 'Vital signs'));
  const trend = h('div', { id: 'trend', class: 'trend-box', tabindex: '-1' });
  const list = h('div', { id: 'results-list' });
  fill(body, h('h2', null, 'Results'),
    h('div', { class: 'controls' },
      h('label', { for: 'res-category' }, 'Show'), select,
      ctx.can('add-result') ? h('a', { href: `#/patient/${enc(id)}/add/result`,
        class: 'button-link add-link', id: 'add-result' }, 'Add a lab result')
        : null),
    trend, list);

  async function showTrend(o) {
    const name = ccText(o.code) || 'Result';
    const c = ((o.code && o.code.coding) || []).find((x) => x.code);
    fill(trend, h('p', { class: 'muted' }, `Loading the trend of ${name}…`));
    trend.focus();
    try {
      let all;
      if (c) {
        const b = await fhirGet(`/Observation?${qs([['patient', id],
          ['code', c.system ? `${c.system}|${c.code}` : c.code],
          ['_sort', 'date'], ['_count', 500]])}`, ctx.signal);
        all = entries(b);
      } else {
        all = [o];
      }
      if (!ctx.alive()) return;
      const pts = all
        .filter((x) => x.valueQuantity && typeof x.valueQuantity.value === 'number')
        .map((x) => {
          const r = refRange(x);
          const fl = interpretation(x);
          const v = x.valueQuantity.value;
          const out = r && ((r.low !== null && v < r.low) ||
            (r.high !== null && v > r.high));
          return { t: timeOf(effectiveOf(x)), v, date: effectiveOf(x),
            abnormal: !!(out || (fl && fl.abnormal)), r };
        })
        .filter((p) => !Number.isNaN(p.t))
        .sort((a, b) => a.t - b.t);
      if (!pts.length) {
        fill(trend, h('p', { class: 'muted' }, `No numeric values of ${name}.`));
        return;
      }
      const withRange = [...pts].reverse().find((p) => p.r);
      fill(trend, h('div', { class: 'trend-head' },
        h('h3', null, `Trend: ${name}`),
        h('button', { type: 'button', class: 'small',
          on: { click: () => fill(trend) } }, 'Close trend')),
      trendPlot({ title: `${name} over time`, unit: obsUnit(o), points: pts,
        range: withRange ? withRange.r : null }),
      h('p', { class: 'muted' }, withRange
        ? 'The shaded band is the reference range.'
        : 'No reference range was recorded.'));
    } catch (e) {
      if (!isQuiet(ctx, e)) fill(trend, problemBox(ctx, id, e, () => showTrend(o)));
    }
  }

  function rows(items) {
    return items.map((o) => {
      const name = ccText(o.code) || 'Unnamed result';
      const fl = interpretation(o);
      const r = refRange(o);
      const numeric = o.valueQuantity && typeof o.valueQuantity.value === 'number';
      const tr = h('tr', { class: fl && fl.abnormal ? 'abnormal' : null },
        cell(fmtDate(effectiveOf(o))),
        h('td', null, name, numeric ? h('button', { type: 'button',
          class: 'small trend-button', 'aria-label': `Trend of ${name}`,
          on: { click: () => showTrend(o) } }, 'Trend') : null),
        cell(obsValue(o), 'num'),
        cell(obsUnit(o)),
        cell(r && r.text),
        h('td', { class: 'flag' }, fl ? (fl.abnormal
          ? h('strong', null, fl.text) : fl.text) : ''),
        cell(o.status));
      return tr;
    });
  }

  function load() {
    fill(list, h('p', { class: 'muted' }, 'Loading…'));
    list.setAttribute('aria-busy', 'true');
    const path = `/Observation?${qs([['patient', id],
      ['category', select.value ? `${CATEGORY}|${select.value}` : ''],
      ['_sort', '-date'], ['_count', 50]])}`;
    paged(ctx, list, path, {
      noun: 'results',
      empty: 'No results recorded.',
      make: () => {
        const t = table('Results', [{ label: 'Date' }, { label: 'Test' },
          { label: 'Result', cls: 'num' }, { label: 'Unit' },
          { label: 'Reference range' }, { label: 'Flag' },
          { label: 'Status' }], []);
        return { root: h('div', { class: 'scroll' }, t),
          into: t.tBodies[0] };
      },
      render: rows,
    }).then(() => {
      // A result just added: its trend, with the new point.
      if (pendingTrend && pendingTrend.id === id && ctx.alive()) {
        const o = pendingTrend.obs;
        pendingTrend = null;
        showTrend(o);
      }
    }).catch((e) => {
      if (!isQuiet(ctx, e)) fill(list, problemBox(ctx, id, e, load));
    }).finally(() => list.setAttribute('aria-busy', 'false'));
  }
  select.addEventListener('change', load);
  load();
}

// ---- encounters -------------------------------------------------------------

function encountersSection(ctx, id, body) {
  const list = h('div');
  fill(body, h('h2', null, 'Encounters'), list);
  const load = () => paged(ctx, list,
    `/Encounter?patient=${enc(id)}&_sort=-date&_count=50`, {
      noun: 'encounters',
      empty: 'No encounters recorded.',
      make: () => {
        const ol = h('ol', { class: 'timeline' });
        return { root: ol, into: ol };
      },
      render: (items) => items.map((e) => {
        const p = e.period || {};
        const what = ccText(e.type) || (e.class && (e.class.display ||
          e.class.code)) || 'Encounter';
        const details = [
          e.class && (e.class.display || e.class.code),
          e.status,
          p.end ? `until ${fmtDate(p.end)}` : '',
          (e.location || []).map((l) => refText(l.location)).join(', '),
          ccText(e.reasonCode),
          refText(e.serviceProvider),
        ].filter(Boolean).join(' · ');
        return h('li', null,
          h('time', { datetime: p.start || null }, fmtDate(p.start) || 'No date'),
          h('div', { class: 'tl-body' },
            h('h3', null, what),
            h('p', null, details),
            h('a', { href: `#/patient/${enc(id)}/history/Encounter/${enc(e.id)}`,
              class: 'small-link' }, 'History')));
      }),
    }).catch((e) => {
      if (!isQuiet(ctx, e)) fill(list, problemBox(ctx, id, e, load));
    });
  load();
}

// ---- notes and documents ----------------------------------------------------

/** The text of a base64 attachment, if it is text (at most 200 KB). */
function shownText(a) {
  const t = attachmentText(a);
  return t === null ? null : t.slice(0, 200000);
}

function notesSection(ctx, id, body) {
  const list = h('div');
  fill(body, h('h2', null, 'Notes and documents'), list);
  const load = () => paged(ctx, list,
    `/DocumentReference?patient=${enc(id)}&_sort=-date&_count=50`, {
      noun: 'documents',
      empty: 'No notes or documents recorded.',
      make: () => {
        const ul = h('ul', { class: 'notes' });
        return { root: ul, into: ul };
      },
      render: (items) => items.map((d) => {
        const title = ccText(d.type) || d.description || 'Document';
        const meta = [
          fmtDate(d.date),
          `status: ${d.status || 'unknown'}`,
          d.docStatus ? `document: ${d.docStatus}` : '',
          (d.author || []).map(refText).filter(Boolean).join(', '),
          ccText(d.category),
        ].filter(Boolean).join(' · ');
        const parts = (d.content || []).map((c, i) => {
          const a = c.attachment || {};
          const text = shownText(a);
          const label = a.title || a.contentType || `Attachment ${i + 1}`;
          if (text !== null) {
            return h('details', null, h('summary', null, `Show text: ${label}`),
              h('pre', { class: 'note-text' }, text));
          }
          return h('p', { class: 'muted' }, `${label}` +
            (a.size ? ` (${a.size} bytes)` : '') +
            (a.url ? ' — stored elsewhere' : ''));
        });
        return h('li', { class: `note status-${d.status || 'unknown'}` },
          h('h3', null, title),
          h('p', { class: 'meta' }, meta),
          d.description && d.description !== title
            ? h('p', null, d.description) : null,
          parts,
          h('p', { class: 'note-links' },
            h('a', { href: `#/patient/${enc(id)}/history/DocumentReference/` +
              enc(d.id), class: 'small-link',
            'aria-label': `History of ${title}` }, 'History'),
            ctx.can('amend-note') && d.status === 'current' &&
              (d.content || []).some((c) => attachmentText(c.attachment) !==
                null)
              ? [' · ', h('a', { href: `#/patient/${enc(id)}/amend/` +
                enc(d.id), class: 'small-link amend-link',
              'aria-label': `Amend ${title}` }, 'Amend')] : null));
      }),
    }).catch((e) => {
      if (!isQuiet(ctx, e)) fill(list, problemBox(ctx, id, e, load));
    });
  load();
}

// ---- adding and amending -------------------------------------------------------

function addSection(ctx, id, body, kind) {
  const k = KINDS[kind];
  if (!k || !ctx.can(kind === 'result' ? 'add-result' : 'add-clinical')) {
    fill(body, h('p', null, 'This section is not available to your role.'));
    return;
  }
  const { form, first } = addForm(ctx, id, kind, (created) => {
    const header = cache && cache.id === id ? cache : null;
    if (kind === 'allergy' && header) header.allergies = null;
    ctx.notify(`Saved the ${k.noun}.`);
    if (kind === 'result') {
      pendingTrend = { id, obs: created };
      ctx.navigate(`#/patient/${enc(id)}/results`);
    } else {
      ctx.navigate(`#/patient/${enc(id)}`);
    }
  });
  fill(body, h('h2', { id: 'add-title' }, k.title),
    h('p', { class: 'muted' }, 'The new entry is a first version in the ' +
      'record; its history keeps who added it and why.'), form);
  first.focus();
}

async function amendSection(ctx, id, body, docId) {
  fill(body, h('h2', null, 'Amend a note'), h('p', { class: 'muted' },
    'Loading the note…'));
  let r;
  try {
    r = await api(`/fhir/DocumentReference/${enc(docId || '')}`,
      { signal: ctx.signal });
  } catch (e) {
    if (!isQuiet(ctx, e)) fill(body, h('h2', null, 'Amend a note'),
      problemBox(ctx, id, e, () => amendSection(ctx, id, body, docId)));
    return;
  }
  if (!ctx.alive()) return;
  const d = r.body;
  const made = amendForm(ctx, id, d, r.etag, (saved) => {
    ctx.notify(`Saved: version ${(saved && saved.meta &&
      saved.meta.versionId) || 'new'} of the note.`);
    ctx.navigate(`#/patient/${enc(id)}/history/DocumentReference/${enc(d.id)}`);
  });
  const title = ccText(d.type) || d.description || 'Note';
  fill(body, h('h2', { id: 'amend-title' }, `Amend: ${title}`),
    h('p', { class: 'muted' }, [fmtDate(d.date), d.docStatus
      ? `document: ${d.docStatus}` : ''].filter(Boolean).join(' · ')),
    made ? made.form : h('p', null, 'This document has no text that can be ' +
      'amended here.'));
  if (made) made.first.focus();
}

// ---- the view ---------------------------------------------------------------

async function loadPatient(ctx, id) {
  if (cache && cache.id === id) return cache;
  const r = await api(`/fhir/Patient/${enc(id)}`, { signal: ctx.signal });
  cache = { id, patient: r.body, etag: r.etag, allergies: null };
  return cache;
}

export async function chartView(main, ctx, id, rest) {
  const section = rest[0] || 'summary';
  // For the timing in tests/web: from here to header and summary shown.
  const t0 = performance.now();
  const again = () => { if (ctx.alive()) chartView(main, ctx, id, rest); };
  if (cache && cache.id !== id) forgetChart();
  // Start the summary's searches and the allergies with the patient read:
  // one round trip for header and summary.
  const loads = section === 'summary' ? summaryLoads(ctx, id) : {};
  let allergiesP = null;
  if (ctx.can('clinical')) {
    allergiesP = cache && cache.allergies ? cache.allergies
      : fhirGet(`/AllergyIntolerance?patient=${enc(id)}&_count=100`, ctx.signal)
        .then(entries);
    allergiesP.catch(() => {});
  }
  if (loads.problems) loads.allergies = allergiesP;
  for (const p of Object.values(loads)) p.catch(() => {});
  const wait = h('p', { class: 'muted' }, 'Opening the chart…');
  fill(main, wait);
  let c;
  try {
    c = await loadPatient(ctx, id);
  } catch (e) {
    if (isQuiet(ctx, e)) return;
    const heading = h('h1', { tabindex: '-1' }, e.restricted
      ? 'This chart is restricted' : 'The chart cannot be opened');
    fill(main, heading, problemBox(ctx, id, e, again));
    if (document.activeElement === document.body) heading.focus();
    return;
  }
  if (!ctx.alive()) return;
  if (allergiesP) c.allergies = allergiesP;
  const body = h('div', { class: 'chart-body', id: 'chart-body' });
  fill(main, h('article', { class: 'chart', 'aria-labelledby': 'chart-name' },
    header(ctx, c.patient, allergiesP), tabs(ctx, id, section), body));
  const need = (SECTIONS.find(([k]) => k === section) || [])[2] ||
    (EXTRA.find(([k]) => k === section) || [])[1];
  const known = SECTIONS.some(([k]) => k === section) ||
    EXTRA.some(([k]) => k === section);
  if (!known || (need && !ctx.can(need))) {
    fill(body, h('p', null, 'This section is not available to your role.'));
  } else if (section === 'summary') {
    const sum = summary(ctx, id, loads);
    fill(body, sum);
    Promise.allSettled([...Object.values(loads), allergiesP || null])
      .then(() => {
        if (ctx.alive()) performance.measure('chart-open', { start: t0 });
      });
  } else if (section === 'results') {
    resultsSection(ctx, id, body);
  } else if (section === 'encounters') {
    encountersSection(ctx, id, body);
  } else if (section === 'notes') {
    notesSection(ctx, id, body);
  } else if (section === 'demographics') {
    fill(body, h('h2', null, 'Correct the demographics'),
      h('p', null, 'Changes make a new version; the old one stays in the ',
        h('a', { href: `#/patient/${enc(id)}/history` }, 'history'), '.'),
      editForm(ctx, c.patient, c.etag, (r) => {
        forgetChart();
        ctx.notify(`Saved: version ${(r.body && r.body.meta &&
          r.body.meta.versionId) || 'new'} of the demographics.`);
        ctx.navigate(`#/patient/${enc(id)}/history`);
      }));
  } else if (section === 'add') {
    addSection(ctx, id, body, rest[1]);
  } else if (section === 'amend') {
    amendSection(ctx, id, body, rest[1]);
  } else if (section === 'access') {
    const box = h('div');
    fill(body, h('h2', null, 'Access log'), h('p', { class: 'muted' },
      'Who opened, searched or changed this chart, newest first.'), box);
    accessLogView(box, ctx, { patientId: id });
  } else if (section === 'history') {
    const [type, rid] = rest[1] && rest[2] ? [rest[1], rest[2]] : ['Patient', id];
    historyView(ctx, body, id, type, rid, problemBox);
  }
  const heading = main.querySelector('#chart-name');
  if (document.activeElement === document.body) heading.focus();
}
