// Synthetic charts for the web tests (never real patients). NDJSON lines
// for `medrec import`.

const LOINC = 'http://loinc.org';
const CAT = 'http://terminology.hl7.org/CodeSystem/observation-category';
const INTERP = 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation';
const CLIN = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
const ICD = 'http://hl7.org/fhir/sid/icd-10-cm';

export const XSS_NAME = '<img src=x onerror=window.__xss=1>';
export const XSS_SCRIPT = '<script>window.__xss=1</script>';

const ref = (id) => ({ reference: `Patient/${id}` });
const day = (y, m, d) =>
  `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;

function obs(id, patient, code, display, value, unit, date, range, flag,
  extra = {}) {
  return {
    resourceType: 'Observation', id, status: 'final',
    category: [{ coding: [{ system: CAT, code: 'laboratory' }] }],
    code: { coding: [{ system: LOINC, code, display }], text: display },
    subject: ref(patient), effectiveDateTime: `${date}T08:00:00Z`,
    valueQuantity: { value, unit, system: 'http://unitsofmeasure.org',
      code: unit },
    ...(range ? { referenceRange: [{ low: { value: range[0], unit },
      high: { value: range[1], unit } }] } : {}),
    ...(flag ? { interpretation: [{ coding: [{ system: INTERP,
      code: flag }] }] } : {}),
    ...extra,
  };
}

/** The main test patient: Ana Sofia Rivera, with a small full chart. */
export function riveraChart() {
  const p = 'web-rivera';
  const out = [{
    resourceType: 'Patient', id: p,
    name: [{ use: 'official', family: 'Rivera', given: ['Ana', 'Sofia'] }],
    gender: 'female', birthDate: '1984-03-09',
    telecom: [{ system: 'phone', value: '+1-555-010-4477', use: 'home' }],
    address: [{ use: 'home', line: ['12 Oak St', 'Apt 3'],
      city: 'Springfield', state: 'IL', postalCode: '62701' }],
  }, {
    resourceType: 'Condition', id: 'web-cond-dm', subject: ref(p),
    clinicalStatus: { coding: [{ system: CLIN, code: 'active' }] },
    code: { coding: [{ system: ICD, code: 'E11.9',
      display: 'Type 2 diabetes mellitus without complications' }] },
    onsetDateTime: '2015-06-01',
  }, {
    resourceType: 'Condition', id: 'web-cond-old', subject: ref(p),
    clinicalStatus: { coding: [{ system: CLIN, code: 'resolved' }] },
    code: { text: 'Fractured wrist (resolved)' }, onsetDateTime: '2001-02-03',
  }, {
    resourceType: 'AllergyIntolerance', id: 'web-allergy-pen', patient: ref(p),
    clinicalStatus: { coding: [{ system:
      'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical',
    code: 'active' }] },
    code: { text: 'Penicillin' }, criticality: 'high',
    reaction: [{ manifestation: [{ text: 'Hives' }] }],
  }, {
    resourceType: 'MedicationRequest', id: 'web-med-metformin', status: 'active',
    intent: 'order', subject: ref(p), authoredOn: '2015-06-02',
    medicationCodeableConcept: { text: 'Metformin 500 mg tablet' },
    dosageInstruction: [{ text: 'One tablet twice a day with meals' }],
  }];
  for (let i = 0; i < 3; i++) {
    out.push({
      resourceType: 'Encounter', id: `web-enc-${i}`, status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
        code: 'AMB', display: 'ambulatory' },
      type: [{ text: ['Diabetes check-up', 'Annual physical',
        'Follow-up visit'][i] }],
      subject: ref(p),
      period: { start: `${day(2023 + i, 4, 10)}T09:00:00Z`,
        end: `${day(2023 + i, 4, 10)}T09:30:00Z` },
    });
  }
  const glucose = [92, 104, 131, 118, 97, 145];
  glucose.forEach((v, i) => {
    out.push(obs(`web-glu-${i}`, p, '2345-7', 'Glucose', v, 'mg/dL',
      day(2020 + i, 5, 1), [70, 99], v > 99 ? 'H' : 'N'));
  });
  out.push({
    resourceType: 'DocumentReference', id: 'web-note-1', status: 'current',
    docStatus: 'final', subject: ref(p), date: '2025-04-10T10:00:00Z',
    type: { text: 'Progress note' },
    content: [{ attachment: { contentType: 'text/plain',
      data: Buffer.from('Patient doing well. Continue metformin.\n')
        .toString('base64') } }],
  });
  return out;
}

/** A patient whose every text is a script payload. */
export function xssChart() {
  const p = 'web-xss';
  return [{
    resourceType: 'Patient', id: p,
    name: [{ family: XSS_NAME, given: [XSS_SCRIPT] }],
    gender: 'other', birthDate: '1990-01-01',
  }, {
    resourceType: 'Condition', id: 'web-xss-cond', subject: ref(p),
    clinicalStatus: { coding: [{ system: CLIN, code: 'active' }] },
    code: { text: XSS_SCRIPT },
  }, {
    resourceType: 'AllergyIntolerance', id: 'web-xss-allergy', patient: ref(p),
    code: { text: XSS_NAME },
  }, obs('web-xss-obs', p, '2345-7', XSS_SCRIPT, 5, XSS_NAME, '2024-01-01',
    [1, 3], 'H'),
  obs('web-xss-obs2', p, '2345-7', XSS_SCRIPT, 2, XSS_NAME, '2024-02-01',
    [1, 3], null),
  {
    resourceType: 'Observation', id: 'web-xss-obs3', status: 'final',
    code: { text: XSS_NAME }, subject: ref(p),
    effectiveDateTime: '2024-03-01T08:00:00Z', valueString: XSS_SCRIPT,
  }, {
    resourceType: 'DocumentReference', id: 'web-xss-note', status: 'current',
    subject: ref(p), description: XSS_SCRIPT, date: '2024-01-02T00:00:00Z',
    type: { text: XSS_NAME },
    content: [{ attachment: { contentType: 'text/html', title: XSS_NAME,
      data: Buffer.from(`${XSS_SCRIPT}${XSS_NAME}`).toString('base64') } }],
  }, {
    resourceType: 'Encounter', id: 'web-xss-enc', status: 'finished',
    class: { code: XSS_NAME }, type: [{ text: XSS_SCRIPT }], subject: ref(p),
    period: { start: '2024-01-01T00:00:00Z' },
  }];
}

/** A restricted patient: clinicians need emergency access. */
export function restrictedChart() {
  return [{
    resourceType: 'Patient', id: 'web-restricted',
    meta: { security: [{ system:
      'http://terminology.hl7.org/CodeSystem/v3-Confidentiality', code: 'R' }] },
    name: [{ family: 'Restrepo', given: ['Rae'] }], gender: 'female',
    birthDate: '1979-07-07',
  }];
}

/**
 * A large chart (n resources, like a big Synthea patient): results,
 * encounters, problems, prescriptions and notes.
 */
export function bigChart(n = 5000) {
  const p = 'web-big';
  const out = [{
    resourceType: 'Patient', id: p,
    name: [{ use: 'official', family: 'Grande', given: ['Maximilian'] }],
    gender: 'male', birthDate: '1950-10-10',
  }];
  const tests = [['2345-7', 'Glucose', 'mg/dL', [70, 99]],
    ['2951-2', 'Sodium', 'mmol/L', [135, 145]],
    ['2823-3', 'Potassium', 'mmol/L', [3.5, 5.1]],
    ['2160-0', 'Creatinine', 'mg/dL', [0.7, 1.3]],
    ['718-7', 'Hemoglobin', 'g/dL', [13.5, 17.5]]];
  let i = 0;
  const t0 = Date.UTC(2000, 0, 1);
  while (out.length < n) {
    const k = i % 20;
    const date = new Date(t0 + i * 3600e3 * 30).toISOString();
    if (k < 14) {
      const [code, name, unit, range] = tests[i % tests.length];
      const v = Math.round((range[0] + (range[1] - range[0]) *
        (0.5 + Math.sin(i / 7))) * 10) / 10;
      out.push(obs(`web-big-o${i}`, p, code, name, v, unit, date.slice(0, 10),
        range, v > range[1] ? 'H' : v < range[0] ? 'L' : 'N'));
    } else if (k < 17) {
      out.push({ resourceType: 'Encounter', id: `web-big-e${i}`,
        status: 'finished', class: { code: 'AMB' }, subject: ref(p),
        type: [{ text: 'Clinic visit' }], period: { start: date } });
    } else if (k < 18) {
      out.push({ resourceType: 'Condition', id: `web-big-c${i}`, subject: ref(p),
        clinicalStatus: { coding: [{ system: CLIN,
          code: Math.floor(i / 20) % 5 ? 'resolved' : 'active' }] },
        code: { text: `Problem ${i}` }, onsetDateTime: date.slice(0, 10) });
    } else if (k < 19) {
      out.push({ resourceType: 'MedicationRequest', id: `web-big-m${i}`,
        status: Math.floor(i / 20) % 4 ? 'stopped' : 'active', intent: 'order',
        subject: ref(p),
        medicationCodeableConcept: { text: `Medication ${i}` },
        authoredOn: date });
    } else {
      out.push({ resourceType: 'DocumentReference', id: `web-big-d${i}`,
        status: 'current', subject: ref(p), date,
        type: { text: 'Progress note' },
        content: [{ attachment: { contentType: 'text/plain',
          data: Buffer.from(`Note ${i}\n`).toString('base64') } }] });
    }
    i++;
  }
  return out;
}
