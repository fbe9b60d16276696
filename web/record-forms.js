// Adding to the chart (a problem, an allergy, a prescription, a lab
// result) and amending a note. Each change carries a reason, sent as
// X-Reason (percent-encoded UTF-8) and kept with the version in the
// history. Checked as you go; what only the server checks comes back as
// an OperationOutcome naming the element ("Observation.valueQuantity.value:
// must be a number") and is shown next to the field for that element.

import { api, ApiError } from './api.js';
import { h, fill } from './dom.js';
import { ICD10CM, localeDateExample, parseUserDate, birthDateProblem }
  from './fmt.js';

const enc = encodeURIComponent;
const LOINC = 'http://loinc.org';
const CLIN = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
const VER = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';
const ACLIN = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
const AVER = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification';
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const INTERP = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';

/** A number as typed: "5", "5.4" or "5,4"; NaN if it is not one. */
function parseNumber(text) {
  const t = text.trim().replace(/^(-?\d+),(\d+)$/, '$1.$2');
  return /^-?(\d+\.?\d*|\.\d+)$/.test(t) ? Number(t) : NaN;
}

/** An optional date as typed (ISO or the locale's order); '' if empty. */
function dateValue(text) {
  const t = text.trim();
  if (!t) return '';
  return parseUserDate(t) || null;
}

function dateProblem(text) {
  const v = dateValue(text);
  if (v === null) {
    return `"${text.trim()}" is not a date (YYYY-MM-DD or ${localeDateExample})`;
  }
  // A real calendar date, not in the future (the birth date's rules).
  return v ? birthDateProblem(v) : '';
}

const dateField = (key, label) => ({ key, label, inputmode: 'numeric',
  hint: `Optional. For example 2024-05-01 or ${localeDateExample}.`,
  check: (v) => dateProblem(v) });

// "A00-Z99" letter, digit, letter or digit, then optionally a dot and up
// to four more (E11.9, I10, S52.501A).
const ICD_RE = /^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$/;
// LOINC: digits, a hyphen and a check digit (2345-7).
const LOINC_RE = /^\d{1,7}-\d$/;

/** A local date-time input value ("2025-04-01T09:30") as an instant. */
function instantOf(local) {
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function nowLocal() {
  const d = new Date();
  d.setSeconds(0, 0);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T` +
    `${p(d.getHours())}:${p(d.getMinutes())}`;
}

const today = () => {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
};

/**
 * What can be added. fields: the form; resource(v, patientRef) builds the
 * resource; where: [element path prefix, field] for server diagnostics.
 */
export const KINDS = {
  problem: {
    type: 'Condition', title: 'Add a problem', noun: 'problem',
    fields: [
      { key: 'text', label: 'Problem', required: true,
        hint: 'As it should read on the problem list, e.g. Type 2 diabetes ' +
          'mellitus.' },
      { key: 'icd', label: 'ICD-10-CM code', required: true, mono: true,
        autocapitalize: 'characters', hint: 'For example E11.9 or I10.',
        check: (v) => (ICD_RE.test(v.trim().toUpperCase()) ? ''
          : `"${v.trim()}" is not an ICD-10-CM code (a letter, two ` +
            'digits or letters, then optionally a dot and up to four more)') },
      dateField('onset', 'Since'),
    ],
    resource: (v, subject) => {
      const code = v.icd.trim().toUpperCase();
      const r = {
        resourceType: 'Condition', subject,
        clinicalStatus: { coding: [{ system: CLIN, code: 'active' }] },
        verificationStatus: { coding: [{ system: VER, code: 'confirmed' }] },
        category: [{ coding: [{ system:
          'http://terminology.hl7.org/CodeSystem/condition-category',
        code: 'problem-list-item' }] }],
        code: { coding: [{ system: ICD10CM, code, display: v.text.trim() }],
          text: v.text.trim() },
        recordedDate: today(),
      };
      if (dateValue(v.onset)) r.onsetDateTime = dateValue(v.onset);
      return r;
    },
    where: [['Condition.code.coding', 'icd'], ['Condition.code', 'text'],
      ['Condition.onset', 'onset']],
  },
  allergy: {
    type: 'AllergyIntolerance', title: 'Add an allergy', noun: 'allergy',
    fields: [
      { key: 'text', label: 'Substance', required: true,
        hint: 'What the patient reacts to, e.g. Penicillin.' },
      { key: 'reaction', label: 'Reaction', hint: 'Optional, e.g. Hives.' },
      { key: 'criticality', label: 'Criticality', options: [
        ['', 'Not assessed'], ['low', 'Low'], ['high', 'High'],
        ['unable-to-assess', 'Unable to assess']] },
      dateField('onset', 'Since'),
    ],
    resource: (v, patient) => {
      const r = {
        resourceType: 'AllergyIntolerance', patient,
        clinicalStatus: { coding: [{ system: ACLIN, code: 'active' }] },
        verificationStatus: { coding: [{ system: AVER, code: 'confirmed' }] },
        code: { text: v.text.trim() },
        recordedDate: today(),
      };
      if (v.criticality) r.criticality = v.criticality;
      if (v.reaction.trim()) {
        r.reaction = [{ manifestation: [{ text: v.reaction.trim() }] }];
      }
      if (dateValue(v.onset)) r.onsetDateTime = dateValue(v.onset);
      return r;
    },
    where: [['AllergyIntolerance.code', 'text'],
      ['AllergyIntolerance.reaction', 'reaction'],
      ['AllergyIntolerance.criticality', 'criticality'],
      ['AllergyIntolerance.onset', 'onset']],
  },
  prescription: {
    type: 'MedicationRequest', title: 'Add a prescription',
    noun: 'prescription',
    fields: [
      { key: 'text', label: 'Medication', required: true,
        hint: 'Name, strength and form, e.g. Metformin 500 mg tablet.' },
      { key: 'dosage', label: 'Dosage instructions',
        hint: 'Optional, e.g. One tablet twice a day with meals.' },
    ],
    resource: (v, subject) => {
      const r = {
        resourceType: 'MedicationRequest', status: 'active', intent: 'order',
        subject, medicationCodeableConcept: { text: v.text.trim() },
        authoredOn: new Date().toISOString(),
      };
      if (v.dosage.trim()) r.dosageInstruction = [{ text: v.dosage.trim() }];
      return r;
    },
    where: [['MedicationRequest.medication', 'text'],
      ['MedicationRequest.dosageInstruction', 'dosage']],
  },
  result: {
    type: 'Observation', title: 'Add a lab result', noun: 'lab result',
    fields: [
      { key: 'text', label: 'Test', required: true, hint: 'e.g. Glucose.' },
      { key: 'loinc', label: 'LOINC code', required: true, mono: true,
        hint: 'For example 2345-7 (glucose).',
        check: (v) => (LOINC_RE.test(v.trim()) ? ''
          : `"${v.trim()}" is not a LOINC code (digits, a hyphen and a ` +
            'check digit)') },
      { key: 'value', label: 'Value', required: true, inputmode: 'decimal',
        check: (v) => (Number.isNaN(parseNumber(v))
          ? `"${v.trim()}" is not a number` : '') },
      { key: 'unit', label: 'Unit', required: true, hint: 'e.g. mg/dL.' },
      { key: 'low', label: 'Reference range, low', inputmode: 'decimal',
        hint: 'Optional.', check: (v) => (v.trim() &&
          Number.isNaN(parseNumber(v)) ? `"${v.trim()}" is not a number` : '') },
      { key: 'high', label: 'Reference range, high', inputmode: 'decimal',
        hint: 'Optional.', check: (v, all) => {
          if (v.trim() && Number.isNaN(parseNumber(v))) {
            return `"${v.trim()}" is not a number`;
          }
          const lo = parseNumber(all.low);
          return v.trim() && !Number.isNaN(lo) && parseNumber(v) < lo
            ? 'The high end is below the low end.' : '';
        } },
      { key: 'interp', label: 'Interpretation', options: [
        ['', 'Not given'], ['N', 'Normal'], ['H', 'High'], ['L', 'Low'],
        ['HH', 'Critically high'], ['LL', 'Critically low'],
        ['A', 'Abnormal']] },
      { key: 'when', label: 'Taken', type: 'datetime-local', required: true,
        initial: nowLocal, hint: 'Date and time the sample was taken.',
        check: (v) => {
          const t = new Date(v).getTime();
          if (Number.isNaN(t)) return 'Give the date and time it was taken.';
          return t > Date.now() + 5 * 60000 ? 'This is in the future.' : '';
        } },
    ],
    resource: (v, subject) => {
      const unit = v.unit.trim();
      const r = {
        resourceType: 'Observation', status: 'final',
        category: [{ coding: [{ system: CAT, code: 'laboratory',
          display: 'Laboratory' }] }],
        code: { coding: [{ system: LOINC, code: v.loinc.trim(),
          display: v.text.trim() }], text: v.text.trim() },
        subject, effectiveDateTime: instantOf(v.when),
        issued: new Date().toISOString(),
        valueQuantity: { value: parseNumber(v.value), unit },
      };
      const range = {};
      if (v.low.trim()) range.low = { value: parseNumber(v.low), unit };
      if (v.high.trim()) range.high = { value: parseNumber(v.high), unit };
      if (range.low || range.high) r.referenceRange = [range];
      if (v.interp) {
        r.interpretation = [{ coding: [{ system: INTERP, code: v.interp }] }];
      }
      return r;
    },
    where: [['Observation.code.coding', 'loinc'], ['Observation.code', 'text'],
      ['Observation.valueQuantity.unit', 'unit'],
      ['Observation.valueQuantity', 'value'],
      ['Observation.referenceRange[0].low', 'low'],
      ['Observation.referenceRange[0].high', 'high'],
      ['Observation.interpretation', 'interp'],
      ['Observation.effective', 'when']],
  },
};

/**
 * A labelled form of fields (see KINDS) and a required reason. submit(v,
 * reason) returns a Promise; an ApiError it rejects with is put next to
 * the field its diagnostic names (where), else above the button.
 * Returns the <form>.
 */
function fieldsForm(ctx, { idPrefix, fields, where, submitLabel, cancelHref,
  reasonLabel, reasonHint, submit, onError }) {
  const inputs = {};
  const errors = {};
  const touched = new Set();
  const all = [...fields, { key: 'reason', label: reasonLabel,
    required: true, textarea: true, hint: reasonHint }];
  const rows = all.map((f) => {
    const id = `${idPrefix}-${f.key}`;
    const err = h('p', { class: 'field-error', id: `${id}-error` });
    errors[f.key] = err;
    const described = [f.hint ? `${id}-hint` : null, `${id}-error`]
      .filter(Boolean).join(' ');
    let input;
    if (f.options) {
      input = h('select', { id, name: f.key, 'aria-describedby': described },
        f.options.map(([v, label]) => h('option', { value: v }, label)));
    } else if (f.textarea) {
      input = h('textarea', { id, name: f.key, rows: f.rows || 2,
        maxlength: f.maxlength || 500, 'aria-describedby': described,
        'aria-required': f.required ? 'true' : null });
    } else {
      input = h('input', { id, name: f.key, type: f.type || 'text',
        inputmode: f.inputmode, autocomplete: 'off',
        autocapitalize: f.autocapitalize, spellcheck: f.mono ? 'false' : null,
        class: f.mono ? 'mono' : null, 'aria-describedby': described,
        'aria-required': f.required ? 'true' : null });
    }
    input.value = typeof f.initial === 'function' ? f.initial()
      : f.initial || '';
    inputs[f.key] = input;
    return h('div', { class: `field field-${f.key}${f.wide || f.textarea
      ? ' wide' : ''}` },
    h('label', { for: id }, f.label, f.required
      ? h('span', { class: 'req' }, ' (required)') : null),
    input,
    f.hint ? h('p', { class: 'hint', id: `${id}-hint` }, f.hint) : null,
    err);
  });
  const formError = h('div', { class: 'form-error', id: `${idPrefix}-form-error`,
    role: 'alert', tabindex: '-1' });
  const button = h('button', { type: 'submit' }, submitLabel);
  const form = h('form', { class: 'record-form', novalidate: true },
    h('div', { class: 'grid' }, rows), formError,
    h('div', { class: 'actions' }, button, cancelHref
      ? h('a', { href: cancelHref, class: 'button-link' }, 'Cancel') : null));

  const values = () => Object.fromEntries(Object.entries(inputs)
    .map(([k, el]) => [k, el.value]));

  function setError(key, text) {
    errors[key].textContent = text || '';
    if (text) inputs[key].setAttribute('aria-invalid', 'true');
    else inputs[key].removeAttribute('aria-invalid');
  }

  function problems() {
    const v = values();
    const p = {};
    for (const f of all) {
      const val = v[f.key];
      if (f.required && !val.trim()) {
        p[f.key] = f.key === 'reason' ? 'Say why the record is changed.'
          : `${f.label} is required.`;
      } else if (val.trim() && f.check) {
        p[f.key] = f.check(val, v) || '';
      }
    }
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
    input.addEventListener('blur', (e) => {
      if (e.relatedTarget === button) return;
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

  function showServerError(err) {
    if (!ctx.alive() || err.name === 'AbortError' ||
        (err instanceof ApiError && err.status === 401)) return;
    if (onError && onError(err, formError)) return;
    const m = /^([A-Za-z]+(?:\.[A-Za-z]+(?:\[\d+\])?)*(?:\[\d+\])?):\s*/
      .exec(err.message);
    const path = m ? m[1] : '';
    const hit = path && (where || []).find(([prefix]) =>
      path === prefix || path.startsWith(prefix));
    if (hit && inputs[hit[1]]) {
      setError(hit[1], err.message.slice(m[0].length));
      inputs[hit[1]].focus();
    } else {
      formError.textContent = err.message;
      formError.focus();
    }
  }

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
    button.disabled = true;
    try {
      const v = values();
      await submit(v, v.reason.trim());
    } catch (err) {
      showServerError(err);
    } finally {
      button.disabled = false;
    }
  });
  return { form, inputs };
}

/**
 * The form for adding a kind (KINDS key) to the chart of patientId.
 * onSaved(created resource) after the server accepted it.
 */
export function addForm(ctx, patientId, kind, onSaved) {
  const k = KINDS[kind];
  const ref = { reference: `Patient/${patientId}` };
  const { form, inputs } = fieldsForm(ctx, {
    idPrefix: `add-${kind}`,
    fields: k.fields,
    where: k.where,
    submitLabel: `Save the ${k.noun}`,
    cancelHref: `#/patient/${enc(patientId)}${kind === 'result'
      ? '/results' : ''}`,
    reasonLabel: 'Reason or source',
    reasonHint: 'Why it is added, e.g. "reported by the patient at ' +
      'admission". Kept with the version in the history.',
    submit: async (v, why) => {
      const r = await api(`/fhir/${k.type}`, { method: 'POST',
        body: k.resource(v, ref),
        headers: { 'X-Reason': encodeURIComponent(why) }, signal: ctx.signal });
      if (ctx.alive()) onSaved(r.body);
    },
  });
  return { form, first: inputs[k.fields[0].key] };
}

/** The text of a text attachment (UTF-8), or null. */
export function attachmentText(a) {
  if (!a || !a.data || !/^text\//i.test(a.contentType || 'text/plain')) {
    return null;
  }
  try {
    const bin = atob(a.data);
    return new TextDecoder('utf-8').decode(
      Uint8Array.from(bin, (ch) => ch.charCodeAt(0)));
  } catch {
    return null;
  }
}

function base64Utf8(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/**
 * Amending a note: the DocumentReference doc (at version etag) gets a new
 * version with the new text, docStatus "amended" and a required reason.
 * Returns {form, first} or null when the note has no text to amend.
 */
export function amendForm(ctx, patientId, doc, etag, onSaved) {
  const idx = (doc.content || []).findIndex((c) =>
    attachmentText(c.attachment) !== null);
  if (idx < 0) return null;
  const was = attachmentText(doc.content[idx].attachment);
  const { form, inputs } = fieldsForm(ctx, {
    idPrefix: 'amend',
    fields: [{ key: 'text', label: 'Note text', required: true,
      textarea: true, rows: 12, maxlength: 200000, initial: was,
      hint: 'The earlier text stays in the history.',
      check: (v) => (v === was ? 'The text is unchanged.' : '') }],
    where: [['DocumentReference.content', 'text']],
    submitLabel: 'Save the amendment',
    cancelHref: `#/patient/${enc(patientId)}/notes`,
    reasonLabel: 'Reason for the amendment',
    reasonHint: 'Required. Kept with the new version in the history.',
    submit: async (v, why) => {
      const next = structuredClone(doc);
      delete next.meta;
      const a = { ...next.content[idx].attachment };
      a.data = base64Utf8(v.text);
      a.size = new TextEncoder().encode(v.text).length;
      delete a.hash;
      next.content[idx] = { ...next.content[idx], attachment: a };
      next.docStatus = 'amended';
      const headers = { 'X-Reason': encodeURIComponent(why) };
      if (etag) headers['If-Match'] = etag;
      const r = await api(`/fhir/DocumentReference/${enc(doc.id)}`,
        { method: 'PUT', body: next, headers, signal: ctx.signal });
      if (ctx.alive()) onSaved(r.body);
    },
    onError: (err, box) => {
      if (err.status !== 409 && err.status !== 412) return false;
      fill(box, h('p', null, 'Someone else changed this note after you ' +
        'opened it; nothing was saved. ', h('a', { href:
        `#/patient/${enc(patientId)}/history/DocumentReference/${enc(doc.id)}` },
      'See what changed'), ', then amend it again.'));
      return true;
    },
  });
  return { form, first: inputs.text };
}
