// The history of one resource: every version with when, who and why, and
// the difference between any two versions, field by field.

import { fhirGet, getPath, linkPath, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { fmtDate } from './fmt.js';
import { attachmentText } from './record-forms.js';

// Who and why are not in FHIR's history Bundle; medrec records them per
// version and sends them as extensions of the entry's request
// (urn:medrec:author, urn:medrec:reason); the response and the resource's
// meta are looked at too.
const WHO = /(^|[:/])author$/;
const WHY = /(^|[:/])reason$/;

function extValue(entry, re) {
  const lists = [entry.request && entry.request.extension,
    entry.response && entry.response.extension,
    entry.resource && entry.resource.meta && entry.resource.meta.extension];
  for (const list of lists) {
    const x = (list || []).find((e) => re.test(e.url || ''));
    if (x) {
      return x.valueString || x.valueCode ||
        (x.valueReference && (x.valueReference.display ||
          x.valueReference.reference)) || '';
    }
  }
  return '';
}

function versionOf(entry) {
  const m = /(\d+)/.exec((entry.response && entry.response.etag) || '');
  if (m) return Number(m[1]);
  return Number(entry.resource && entry.resource.meta &&
    entry.resource.meta.versionId) || 0;
}

/** Flattens a resource into [path, text] pairs (meta's bookkeeping left out). */
export function flatten(value, path = '', out = []) {
  if (value === null || typeof value !== 'object') {
    out.push([path, typeof value === 'string' ? value : JSON.stringify(value)]);
  } else if (Array.isArray(value)) {
    if (!value.length) out.push([path, '[]']);
    value.forEach((v, i) => flatten(v, `${path}[${i}]`, out));
  } else {
    // A text attachment is compared as its text, not as base64.
    const text = typeof value.data === 'string' ? attachmentText(value) : null;
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      if (p === 'meta.versionId' || p === 'meta.lastUpdated') continue;
      if (k === 'data' && text !== null) {
        out.push([`${p} (text)`, text]);
        continue;
      }
      flatten(v, p, out);
    }
  }
  return out;
}

/** Rows of the difference between two resources (either may be null). */
export function diff(older, newer) {
  const a = new Map(older ? flatten(older) : []);
  const b = new Map(newer ? flatten(newer) : []);
  const keys = [...b.keys()];
  for (const k of a.keys()) if (!b.has(k)) keys.push(k);
  return keys.map((k) => {
    const was = a.get(k);
    const now = b.get(k);
    let kind = 'same';
    if (was === undefined) kind = 'added';
    else if (now === undefined) kind = 'removed';
    else if (was !== now) kind = 'changed';
    return { path: k, was, now, kind };
  });
}

/**
 * A changed value with the part that changed marked: [before, changed,
 * after] for each side (common start and end left plain).
 */
function marked(was, now) {
  const a = [...was];
  const b = [...now];
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  let j = 0;
  while (j < a.length - i && j < b.length - i &&
    a[a.length - 1 - j] === b[b.length - 1 - j]) j++;
  const part = (x) => [x.slice(0, i).join(''), x.slice(i, x.length - j)
    .join(''), x.slice(x.length - j).join('')];
  return [part(a), part(b)];
}

function side(tag, [pre, mid, post]) {
  return h(tag, null, pre, mid ? h('mark', null, mid) : null, post);
}

function diffTable(rows, showSame) {
  const shown = rows.filter((r) => showSame || r.kind !== 'same');
  if (!shown.length) return h('p', { class: 'muted' }, 'No differences.');
  const label = { added: 'added', removed: 'removed', changed: 'changed',
    same: 'unchanged' };
  return h('div', { class: 'scroll' }, h('table', { class: 'data diff' },
    h('caption', { class: 'sr-only' }, 'Differences between the versions'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Field'),
      h('th', { scope: 'col' }, 'Older version'),
      h('th', { scope: 'col' }, 'Newer version'),
      h('th', { scope: 'col' }, 'Change'))),
    h('tbody', null, shown.map((r) => {
      const [was, now] = r.kind === 'changed' ? marked(r.was, r.now)
        : [[r.was, '', ''], [r.now, '', '']];
      return h('tr', { class: `diff-${r.kind}` },
        h('td', { class: 'mono' }, r.path),
        h('td', { class: 'value' }, r.was === undefined ? ''
          : r.kind === 'same' ? r.was : side('del', was)),
        h('td', { class: 'value' }, r.now === undefined ? ''
          : r.kind === 'same' ? r.now : side('ins', now)),
        h('td', null, label[r.kind]));
    }))));
}

export async function historyView(ctx, body, patientId, type, id, problemBox) {
  const title = type === 'Patient' ? 'History of the demographics'
    : `History of ${type}/${id}`;
  const list = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  fill(body, h('h2', null, title), list);
  const versions = [];
  try {
    let b = await fhirGet(`/${encodeURIComponent(type)}/${encodeURIComponent(id)}` +
      '/_history?_count=100', ctx.signal);
    for (;;) {
      if (!ctx.alive()) return;
      for (const e of b.entry || []) versions.push(e);
      const next = linkPath(b, 'next');
      if (!next || versions.length >= 1000) break;
      b = await getPath(next, ctx.signal);
    }
  } catch (e) {
    if (!ctx.alive() || e.name === 'AbortError' ||
        (e instanceof ApiError && e.status === 401)) return;
    fill(list, problemBox(ctx, patientId, e, () =>
      historyView(ctx, body, patientId, type, id, problemBox)));
    return;
  }
  if (!ctx.alive()) return;
  versions.sort((x, y) => versionOf(y) - versionOf(x));
  const whoKnown = versions.some((e) => extValue(e, WHO));
  const rows = versions.map((e) => {
    const method = (e.request && e.request.method) || '';
    const what = { POST: 'created', PUT: 'updated', DELETE: 'deleted' }[method]
      || method;
    return h('tr', null,
      h('td', { class: 'num' }, String(versionOf(e))),
      h('td', null, fmtDate(e.response && e.response.lastModified)),
      h('td', null, what),
      h('td', { class: 'who' }, extValue(e, WHO) || '—'),
      h('td', { class: 'why' }, extValue(e, WHY) || '—'));
  });
  const vt = h('table', { class: 'data', id: 'versions' },
    h('caption', { class: 'sr-only' }, 'Versions, newest first'),
    h('thead', null, h('tr', null, ['Version', 'When', 'Change', 'Who',
      'Why'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows));
  const opts = (sel) => versions.map((e) => h('option', {
    value: String(versionOf(e)), selected: versionOf(e) === sel },
  `Version ${versionOf(e)} (${fmtDate(e.response && e.response.lastModified)})`));
  const newest = versions.length ? versionOf(versions[0]) : 0;
  const older = versions.length > 1 ? versionOf(versions[1]) : newest;
  const selA = h('select', { id: 'diff-a' }, opts(older));
  const selB = h('select', { id: 'diff-b' }, opts(newest));
  const same = h('input', { type: 'checkbox', id: 'diff-same' });
  const out = h('div', { id: 'diff-out', 'aria-live': 'polite' });
  const render = () => {
    const find = (v) => versions.find((e) => versionOf(e) === Number(v));
    let a = find(selA.value);
    let b = find(selB.value);
    if (versionOf(a) > versionOf(b)) [a, b] = [b, a];
    fill(out, a === b ? h('p', { class: 'muted' },
      'Choose two different versions to compare.')
      : diffTable(diff(a.resource || null, b.resource || null), same.checked));
  };
  for (const el of [selA, selB, same]) el.addEventListener('change', render);
  fill(list,
    h('div', { class: 'scroll' }, vt),
    whoKnown ? null : h('p', { class: 'muted' }, 'Who made these ' +
      'versions and why was not recorded.'),
    versions.length > 1 ? h('section', { class: 'compare',
      'aria-labelledby': 'cmp-h' },
    h('h3', { id: 'cmp-h' }, 'Compare versions'),
    h('div', { class: 'controls' },
      h('label', { for: 'diff-a' }, 'Older'), selA,
      h('label', { for: 'diff-b' }, 'Newer'), selB,
      h('span', { class: 'check' }, same,
        h('label', { for: 'diff-same' }, 'Show unchanged fields'))),
    out) : h('p', { class: 'muted' }, 'Only one version so far.'));
  if (versions.length > 1) render();
}
