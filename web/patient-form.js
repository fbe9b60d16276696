// The demographics form, for registering a patient and for correcting one.
// It checks as you go with the server's rules and texts
// (src/records/patient.c); what only the server checks comes back as an
// OperationOutcome naming the field ("Patient.birthDate: ..."), and is
// shown next to that field.

import { api, fhirGet, entries, qs, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { nameOf, sexLabel, mrnOf, fmtDate, fmtLongDate, parseUserDate,
  birthDateProblem, localeDateExample } from './fmt.js';

const GENDERS = ['female', 'male', 'other', 'unknown'];

// The server's phone and e-mail shapes (mr_phone_valid, email_valid).
function phoneOk(v) {
  let digits = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c >= '0' && c <= '9') {
      digits++;
    } else if (c === 'x' || c === 'X') {
      if (!/^[\d ]*$/.test(v.slice(i + 1))) return false;
      break;
    } else if (!'+()-. '.includes(c) || (c === '+' && i !== 0)) {
      return false;
    }
  }
  return digits >= 7 && digits <= 15;
}

function emailOk(v) {
  const at = v.indexOf('@');
  if (at <= 0 || v.indexOf('@', at + 1) >= 0 || !v.slice(at + 1).includes('.')
      || v.includes(' ')) return false;
  return v[at + 1] !== '.' && !v.endsWith('.');
}

const FIELDS = [
  { key: 'family', label: 'Family name', required: true,
    autocomplete: 'family-name' },
  { key: 'given', label: 'Given names', autocomplete: 'given-name',
    hint: 'Separate several given names with spaces.' },
  { key: 'birthDate', label: 'Birth date', inputmode: 'numeric',
    hint: `For example 1984-03-09 or ${localeDateExample}.` },
  { key: 'gender', label: 'Sex', select: true },
  { key: 'phone', label: 'Phone', type: 'tel', autocomplete: 'tel' },
  { key: 'email', label: 'E-mail', type: 'email', autocomplete: 'email' },
  { key: 'line', label: 'Street address', autocomplete: 'address-line1' },
  { key: 'city', label: 'City', autocomplete: 'address-level2' },
  { key: 'state', label: 'State', autocomplete: 'address-level1' },
  { key: 'postalCode', label: 'Postal code', autocomplete: 'postal-code' },
];

/** The form's values from a Patient. */
function valuesOf(p) {
  const names = p.name || [];
  const n = names.find((x) => x.use === 'official') || names[0] || {};
  const tel = (sys) => ((p.telecom || []).find((t) => t.system === sys) || {})
    .value || '';
  const a = (p.address || []).find((x) => x.use === 'home') ||
    (p.address || [])[0] || {};
  return {
    family: n.family || '', given: (n.given || []).join(' '),
    birthDate: p.birthDate || '', gender: p.gender || '',
    phone: tel('phone'), email: tel('email'),
    line: (a.line || []).join(', '), city: a.city || '', state: a.state || '',
    postalCode: a.postalCode || '',
  };
}

/**
 * base (a Patient, kept whole) with the form's values applied. Only what
 * the person changed (v differs from was) is touched, so a correction of
 * the phone does not rewrite a two-line address or a second given name.
 */
function toPatient(base, v, was) {
  const p = structuredClone(base || { resourceType: 'Patient' });
  p.resourceType = 'Patient';
  const changed = (...keys) => keys.some((k) => (v[k] || '') !== (was[k] || ''));
  if (changed('family', 'given')) {
    const names = p.name || [];
    let i = names.findIndex((x) => x.use === 'official');
    if (i < 0) i = names.length ? 0 : -1;
    const given = v.given.split(/\s+/).filter(Boolean);
    if (v.family || given.length) {
      const n = i >= 0 ? { ...names[i] } : { use: 'official' };
      if (v.family) n.family = v.family; else delete n.family;
      if (given.length) n.given = given; else delete n.given;
      delete n.text;
      if (i >= 0) names[i] = n; else names.push(n);
    } else if (i >= 0) {
      names.splice(i, 1);
    }
    if (names.length) p.name = names; else delete p.name;
  }
  if (changed('birthDate')) {
    if (v.birthDate) p.birthDate = v.birthDate; else delete p.birthDate;
  }
  if (changed('gender')) {
    if (v.gender) p.gender = v.gender; else delete p.gender;
  }
  for (const sys of ['phone', 'email']) {
    if (!changed(sys)) continue;
    const telecom = p.telecom || [];
    const j = telecom.findIndex((t) => t.system === sys);
    if (v[sys] && j >= 0) telecom[j] = { ...telecom[j], value: v[sys] };
    else if (v[sys]) telecom.push({ system: sys, value: v[sys], use: 'home' });
    else if (j >= 0) telecom.splice(j, 1);
    if (telecom.length) p.telecom = telecom; else delete p.telecom;
  }
  if (changed('line', 'city', 'state', 'postalCode')) {
    const addrs = p.address || [];
    let k = addrs.findIndex((x) => x.use === 'home');
    if (k < 0) k = addrs.length ? 0 : -1;
    const a = k >= 0 ? { ...addrs[k] } : { use: 'home' };
    if (changed('line')) {
      if (v.line) a.line = [v.line]; else delete a.line;
    }
    for (const f of ['city', 'state', 'postalCode']) {
      if (v[f]) a[f] = v[f]; else delete a[f];
    }
    const hasAddr = ['line', 'city', 'state', 'postalCode', 'country', 'text',
      'district'].some((f) => a[f]);
    if (hasAddr && k >= 0) addrs[k] = a;
    else if (hasAddr) addrs.push(a);
    else if (k >= 0) addrs.splice(k, 1);
    if (addrs.length) p.address = addrs; else delete p.address;
  }
  return p;
}

/** The form field a server diagnostic names, from the resource sent. */
function fieldOfDiagnostic(msg, sent) {
  const m = /^Patient(?:\.([A-Za-z]+)(?:\[(\d+)\])?(?:\.[A-Za-z.[\]0-9]+)?)?:\s*/
    .exec(msg);
  if (!m) return { field: null, text: msg };
  const text = msg.slice(m[0].length);
  const el = m[1];
  if (!el) return { field: 'family', text };
  if (el === 'telecom') {
    const t = (sent.telecom || [])[+(m[2] || 0)] || {};
    return { field: t.system === 'email' ? 'email' : 'phone', text };
  }
  if (el === 'name') return { field: 'family', text };
  if (el === 'address') return { field: 'line', text };
  if (el === 'birthDate' || el === 'gender') return { field: el, text };
  return { field: null, text: msg };
}

/**
 * Builds the form. opts: patient (for a correction), reason (ask for a
 * reason), submitLabel, onSubmit(resource, reason) -> Promise (rejects an
 * ApiError to show), beforeSubmit(values) -> Promise<boolean> (false stops).
 * Returns {form, values(), showServerError(err, sent)}.
 */
function buildForm(ctx, opts) {
  const initial = opts.patient ? valuesOf(opts.patient) : {};
  const inputs = {};
  const errors = {};
  const touched = new Set();
  const formError = h('div', { class: 'form-error', id: 'form-error',
    role: 'alert', tabindex: '-1' });
  const rows = FIELDS.map((f) => {
    const id = `pf-${f.key}`;
    const err = h('p', { class: 'field-error', id: `${id}-error` });
    errors[f.key] = err;
    const described = [f.hint ? `${id}-hint` : null, `${id}-error`]
      .filter(Boolean).join(' ');
    let input;
    if (f.select) {
      input = h('select', { id, name: f.key, 'aria-describedby': described },
        h('option', { value: '' }, 'Not recorded'),
        GENDERS.map((g) => h('option', { value: g }, sexLabel(g))));
    } else {
      input = h('input', { id, name: f.key, type: f.type || 'text',
        autocomplete: f.autocomplete || 'off', inputmode: f.inputmode,
        'aria-describedby': described, 'aria-required': f.required ? 'true'
          : null });
    }
    input.value = initial[f.key] || '';
    inputs[f.key] = input;
    return h('div', { class: `field field-${f.key}` },
      h('label', { for: id }, f.label, f.required
        ? h('span', { class: 'req' }, ' (required)') : null),
      input,
      f.hint ? h('p', { class: 'hint', id: `${id}-hint` }, f.hint) : null,
      err);
  });
  let reason = null;
  if (opts.reason) {
    reason = h('textarea', { id: 'pf-reason', name: 'reason', rows: 2,
      maxlength: 500, 'aria-required': 'true',
      'aria-describedby': 'pf-reason-hint pf-reason-error' });
    errors.reason = h('p', { class: 'field-error', id: 'pf-reason-error' });
    inputs.reason = reason;
    rows.push(h('div', { class: 'field field-reason' },
      h('label', { for: 'pf-reason' }, 'Reason for the change',
        h('span', { class: 'req' }, ' (required)')),
      reason,
      h('p', { class: 'hint', id: 'pf-reason-hint' },
        'Kept with the new version in the record\u2019s history.'),
      errors.reason));
  }
  const dateEcho = h('p', { class: 'hint date-echo', 'aria-live': 'polite' });
  errors.birthDate.before(dateEcho);
  const submit = h('button', { type: 'submit' }, opts.submitLabel);
  const extra = h('div', { class: 'form-extra' });
  const form = h('form', { class: 'patient-form', novalidate: true },
    h('div', { class: 'grid' }, rows), extra, formError,
    h('div', { class: 'actions' }, submit,
      opts.cancelHref ? h('a', { href: opts.cancelHref, class: 'button-link' },
        'Cancel') : null));

  function setError(key, text) {
    const input = inputs[key];
    errors[key].textContent = text || '';
    if (text) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function values() {
    const v = {};
    for (const f of FIELDS) v[f.key] = inputs[f.key].value.trim();
    const iso = v.birthDate ? parseUserDate(v.birthDate) : '';
    v.birthDate = iso === null ? v.birthDate : iso;
    return v;
  }

  /** The client-side checks; returns the problems by field. */
  function problems() {
    const v = values();
    const p = {};
    if (!v.family && !v.given) p.family = 'A family or given name is required.';
    else if (!v.family) p.family = 'A family name is required.';
    if (v.birthDate) {
      p.birthDate = birthDateProblem(v.birthDate);
      // Says back the date understood, in words, so 03/09 is not misread.
      dateEcho.textContent = p.birthDate ? '' : `= ${fmtLongDate(v.birthDate)}`;
    } else {
      dateEcho.textContent = '';
    }
    if (v.gender && !GENDERS.includes(v.gender)) {
      p.gender = `"${v.gender}" is not in the required value set ` +
        '(male | female | other | unknown)';
    }
    if (v.phone && !phoneOk(v.phone)) p.phone = `"${v.phone}" is not a valid phone number`;
    if (v.email && !emailOk(v.email)) p.email = `"${v.email}" is not a valid e-mail address`;
    if (reason && !reason.value.trim()) p.reason = 'Say why the record is changed.';
    return p;
  }

  function check(only) {
    const p = problems();
    for (const key of Object.keys(inputs)) {
      if (!only || only.has(key)) setError(key, p[key] || '');
    }
    return p;
  }

  for (const [key, input] of Object.entries(inputs)) {
    // As you go: a field is checked once left, then at every change.
    input.addEventListener('blur', (e) => {
      // Leaving for the submit button: the submit checks everything, and
      // a message appearing now would move the button from under the
      // pointer and lose the click.
      if (e.relatedTarget === submit) return;
      if (input.value.trim() || touched.has(key)) {
        touched.add(key);
        check(touched);
      }
    });
    input.addEventListener(input.tagName === 'SELECT' ? 'change' : 'input',
      () => {
        formError.textContent = '';
        if (touched.has(key)) check(touched);
      });
  }

  problems(); // the date as understood, from the start

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    formError.textContent = '';
    for (const key of Object.keys(inputs)) touched.add(key);
    const p = check(null);
    const bad = Object.keys(inputs).find((k) => p[k]);
    if (bad) {
      inputs[bad].focus();
      return;
    }
    const v = values();
    inputs.birthDate.value = v.birthDate;
    submit.disabled = true;
    try {
      if (opts.beforeSubmit && !(await opts.beforeSubmit(v, extra))) return;
      const sent = toPatient(opts.patient, v, initial);
      await opts.onSubmit(sent, reason ? reason.value.trim() : '').catch(
        (err) => showServerError(err, sent));
    } finally {
      submit.disabled = false;
    }
  });

  /** Puts a server error next to the field it names, or above the button. */
  function showServerError(err, sent) {
    if (!ctx.alive() || err.name === 'AbortError' ||
        (err instanceof ApiError && err.status === 401)) return;
    if (opts.onError && opts.onError(err, formError)) return;
    const { field, text } = fieldOfDiagnostic(err.message, sent);
    if (field && inputs[field]) {
      setError(field, text);
      inputs[field].focus();
    } else {
      formError.textContent = err.message;
      formError.focus();
    }
  }

  return { form, values, inputs, formError, extra };
}

function duplicateList(list) {
  return h('ul', { class: 'dup-list' }, list.map((p) => h('li', null,
    h('a', { href: `#/patient/${encodeURIComponent(p.id)}` }, nameOf(p)),
    ` — ${sexLabel(p.gender)}, born ${fmtDate(p.birthDate)}`,
    mrnOf(p) ? `, MRN ${mrnOf(p)}` : '')));
}

export function registerView(main, ctx) {
  // The family name and birth date the person confirmed as a different
  // person, and the ones a save was stopped for.
  let confirmed = '';
  let asked = '';
  let dupTimer = 0;
  let dupSeq = 0;
  const dupBox = h('div', { class: 'dup-warning', id: 'dup-warning',
    role: 'status', 'aria-live': 'polite' });
  const keyOf = (v) => `${v.family.toLowerCase()}|${v.birthDate}`;

  async function findDuplicates(v) {
    if (!v.family || !v.birthDate || birthDateProblem(v.birthDate)) return [];
    const b = await fhirGet(`/Patient?${qs([['family', v.family],
      ['birthdate', v.birthDate], ['_count', 10],
      ['_elements', 'name,gender,birthDate,identifier']])}`, ctx.signal);
    return entries(b).filter((r) => r.resourceType === 'Patient');
  }

  function showDuplicates(list, key) {
    if (!list.length) {
      fill(dupBox);
      dupBox.classList.remove('shown');
      return;
    }
    dupBox.classList.add('shown');
    fill(dupBox, h('p', null, h('strong', null, 'Possible duplicate: '),
      `${list.length} patient${list.length === 1 ? ' has' : 's have'} the ` +
      'same family name and birth date. Check that this is a different ' +
      'person before registering.'), duplicateList(list),
    key === asked && key !== confirmed ? overrideButton(key) : null);
  }

  /** "This is a different person": registers with X-Duplicate-Checked. */
  function overrideButton(key) {
    return h('button', { type: 'button', class: 'secondary override',
      on: { click: () => {
        confirmed = key;
        f.form.requestSubmit();
      } } }, 'This is a different person: register');
  }

  const f = buildForm(ctx, {
    submitLabel: 'Register patient',
    cancelHref: '#/search',
    beforeSubmit: async (v) => {
      const key = keyOf(v);
      if (confirmed === key) return true;
      dupSeq++;
      const list = await findDuplicates(v).catch(() => []);
      if (!ctx.alive()) return false;
      if (!list.length) return true;
      asked = key;
      showDuplicates(list, key);
      dupBox.querySelector('button').focus();
      return false;
    },
    onSubmit: async (patient) => {
      // The person checked the possible duplicates and says this is a
      // different person: the server registers anyway and keeps that.
      const v = f.values();
      const headers = confirmed && confirmed === keyOf(v)
        ? { 'X-Duplicate-Checked': 'different-person' } : {};
      const r = await api('/fhir/Patient', { method: 'POST', body: patient,
        headers, signal: ctx.signal });
      if (!ctx.alive()) return;
      ctx.notify(`Registered ${nameOf(r.body)}, MRN ${mrnOf(r.body)}.`);
      ctx.navigate(`#/patient/${encodeURIComponent(r.body.id)}`);
    },
    onError: (err, box) => {
      if (err.status !== 409) return false;
      // The server refuses a likely duplicate; it names the one it found.
      const m = /Patient\/([A-Za-z0-9.-]{1,64})/.exec(err.message);
      const key = keyOf(f.values());
      // The override the server's message mentions, as a button.
      const text = err.message.replace(/;?\s*if this is a different person.*$/i,
        '.');
      fill(box, h('p', null, text.charAt(0).toUpperCase() + text.slice(1)),
        m ? h('p', null, h('a', {
          href: `#/patient/${encodeURIComponent(m[1])}` },
        'Open the existing chart')) : null,
        confirmed === key ? null : h('p', null, 'If you have checked that ' +
          'this is a different person, register anyway: ',
        overrideButton(key)));
      return true;
    },
  });
  // As you go: once family name and birth date are both there, look.
  for (const key of ['family', 'birthDate']) {
    f.inputs[key].addEventListener('change', () => {
      clearTimeout(dupTimer);
      const mine = ++dupSeq;
      dupTimer = setTimeout(async () => {
        const v = f.values();
        const list = await findDuplicates(v).catch(() => []);
        if (ctx.alive() && mine === dupSeq) showDuplicates(list, keyOf(v));
      }, 200);
    });
  }
  f.extra.append(dupBox);
  fill(main, h('section', { class: 'register', 'aria-labelledby': 'reg-title' },
    h('h1', { id: 'reg-title', tabindex: '-1' }, 'Register a patient'),
    h('p', null, 'The MRN is assigned when the patient is registered.'),
    f.form));
}

/**
 * Correcting demographics: the chart's "Demographics" section. The reason
 * goes in the X-Reason header (percent-encoded UTF-8), the version in
 * If-Match so a concurrent change is not overwritten.
 */
export function editForm(ctx, patient, etag, onSaved) {
  const f = buildForm(ctx, {
    patient,
    reason: true,
    submitLabel: 'Save correction',
    cancelHref: `#/patient/${encodeURIComponent(patient.id)}`,
    onSubmit: async (resource, why) => {
      const headers = { 'X-Reason': encodeURIComponent(why) };
      if (etag) headers['If-Match'] = etag;
      const r = await api(`/fhir/Patient/${encodeURIComponent(patient.id)}`,
        { method: 'PUT', body: resource, headers, signal: ctx.signal });
      if (ctx.alive()) onSaved(r);
    },
    onError: (err, box) => {
      if (err.status !== 409 && err.status !== 412) return false;
      fill(box, h('p', null, 'Someone else changed this record after you ' +
        'opened it; nothing was saved. ', h('a', {
        href: `#/patient/${encodeURIComponent(patient.id)}/history` },
      'See what changed'), ', then reload and make the correction again.'),
      h('p', { class: 'hint' }, err.message));
      return true;
    },
  });
  return f.form;
}
