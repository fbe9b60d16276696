// Turning FHIR values into text for people: names, ages, dates in the
// user's locale (Intl), codes, quantities.

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const longDateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'long' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined,
  { dateStyle: 'medium', timeStyle: 'short' });
const monthFmt = new Intl.DateTimeFormat(undefined,
  { year: 'numeric', month: 'short' });
const numFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 6 });

export const MRN_SYSTEM = 'urn:medrec:mrn';
export const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/;

/** A FHIR date ("1984", "1984-03", "1984-03-09") as local Date parts. */
function dateParts(s) {
  const m = DATE_RE.exec(s || '');
  return m ? { y: +m[1], m: m[2] ? +m[2] : 0, d: m[3] ? +m[3] : 0 } : null;
}

/** A FHIR date, dateTime or instant in the user's locale. */
export function fmtDate(s) {
  if (!s) return '';
  const p = dateParts(s);
  if (p) {
    if (!p.m) return String(p.y);
    if (!p.d) return monthFmt.format(new Date(p.y, p.m - 1, 1));
    return dateFmt.format(new Date(p.y, p.m - 1, p.d));
  }
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : dateTimeFmt.format(d);
}

/** Only the date part of a dateTime, in the user's locale. */
export function fmtDay(s) {
  if (!s) return '';
  if (dateParts(s)) return fmtDate(s);
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : dateFmt.format(d);
}

export function fmtLongDate(iso) {
  const p = dateParts(iso);
  return p && p.d ? longDateFmt.format(new Date(p.y, p.m - 1, p.d)) : iso;
}

/** A sortable time for a FHIR date or dateTime (ms; NaN if none). */
export function timeOf(s) {
  if (!s) return NaN;
  const p = dateParts(s);
  if (p) return new Date(p.y, (p.m || 1) - 1, p.d || 1).getTime();
  return new Date(s).getTime();
}

/** Whether y-m-d is a real calendar date. */
function realDate(y, m, d) {
  const t = new Date(Date.UTC(y, m - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === m - 1 &&
    t.getUTCDate() === d;
}

// The order of day, month and year in this locale's numeric dates.
const localeOrder = new Intl.DateTimeFormat(undefined,
  { year: 'numeric', month: '2-digit', day: '2-digit' })
  .formatToParts(new Date(2001, 10, 22))
  .map((p) => p.type)
  .filter((t) => t === 'day' || t === 'month' || t === 'year');

/** An example of the locale's numeric date ("09/03/1984" or "03/09/1984"). */
export const localeDateExample = new Intl.DateTimeFormat(undefined,
  { year: 'numeric', month: '2-digit', day: '2-digit' })
  .format(new Date(1984, 2, 9));

/**
 * What a person typed as a date: ISO (1984-03-09, 1984-03, 1984) or the
 * locale's numeric order (09/03/1984 in en-GB, 03/09/1984 in en-US).
 * Returns the ISO text (possibly not a real date: the caller checks), or
 * null when it does not look like a date at all.
 */
export function parseUserDate(text) {
  const t = text.trim();
  if (DATE_RE.test(t)) return t;
  const m = /^(\d{1,4})[./\-\s](\d{1,2})[./\-\s](\d{1,4})$/.exec(t);
  if (!m) return null;
  const v = {};
  localeOrder.forEach((k, i) => { v[k] = m[i + 1]; });
  if (!v.year || v.year.length !== 4) return null;
  return `${v.year}-${v.month.padStart(2, '0')}-${v.day.padStart(2, '0')}`;
}

/** Why a FHIR date is not acceptable as a birth date ('' if it is). The
 * texts are the server's (src/records/patient.c), without the field. */
export function birthDateProblem(iso, now = new Date()) {
  const m = DATE_RE.exec(iso);
  if (!m || (m[2] && (+m[2] < 1 || +m[2] > 12)) ||
      (m[3] && !realDate(+m[1], +m[2], +m[3]))) {
    return `"${iso}" is not a valid date`;
  }
  const start = new Date(+m[1], m[2] ? +m[2] - 1 : 0, m[3] ? +m[3] : 1);
  if (start.getTime() > now.getTime()) return `"${iso}" is in the future`;
  return '';
}

/** Age in whole years (or months under 2) at death or now; '' if unknown. */
export function age(birthDate, deceasedDateTime, now = new Date()) {
  const b = dateParts(birthDate);
  if (!b) return '';
  let end = now;
  if (deceasedDateTime) {
    const d = new Date(timeOf(deceasedDateTime));
    if (!Number.isNaN(d.getTime())) end = d;
  }
  const bm = b.m || 1;
  const bd = b.d || 1;
  let years = end.getFullYear() - b.y;
  if (end.getMonth() + 1 < bm ||
      (end.getMonth() + 1 === bm && end.getDate() < bd)) years -= 1;
  if (years >= 2) return String(years);
  let months = (end.getFullYear() - b.y) * 12 + end.getMonth() + 1 - bm;
  if (end.getDate() < bd) months -= 1;
  return months < 0 ? '' : `${months} mo`;
}

export function sexLabel(g) {
  return { female: 'Female', male: 'Male', other: 'Other',
    unknown: 'Unknown' }[g] || (g || '—');
}

export function mrnOf(p) {
  const id = (p.identifier || []).find((i) => i.system === MRN_SYSTEM);
  return id ? id.value : '';
}

/** "Family, Given Middle" from the official (or first usable) name. */
export function nameOf(p) {
  const names = p.name || [];
  const n = names.find((x) => x.use === 'official') ||
    names.find((x) => x.use !== 'old') || names[0];
  if (!n) return '(no name)';
  const given = (n.given || []).join(' ');
  if (n.family || given) return [n.family, given].filter(Boolean).join(', ');
  return n.text || '(no name)';
}

/** The text of a CodeableConcept (or a list of them). */
export function ccText(cc) {
  if (!cc) return '';
  if (Array.isArray(cc)) return cc.map(ccText).filter(Boolean).join(', ');
  return cc.text ||
    (cc.coding || []).map((c) => c.display || c.code).find(Boolean) || '';
}

/** The code of cc in the given system, or ''. */
export function codeIn(cc, system) {
  const c = ((cc && cc.coding) || []).find((x) => x.system === system);
  return c ? c.code || '' : '';
}

export function fmtNumber(v) {
  return typeof v === 'number' ? numFmt.format(v) : String(v ?? '');
}

export function quantityText(q) {
  if (!q) return '';
  const v = q.value === undefined ? '' : fmtNumber(q.value);
  return [q.comparator, v, q.unit || q.code].filter(Boolean).join(' ');
}

/** The value of an Observation as text (value[x] or its components). */
export function obsValue(o) {
  if (o.valueQuantity) {
    const q = o.valueQuantity;
    return [q.comparator, q.value === undefined ? '' : fmtNumber(q.value)]
      .filter(Boolean).join(' ');
  }
  if (o.valueCodeableConcept) return ccText(o.valueCodeableConcept);
  if (o.valueString !== undefined) return o.valueString;
  if (o.valueBoolean !== undefined) return o.valueBoolean ? 'yes' : 'no';
  if (o.valueInteger !== undefined) return fmtNumber(o.valueInteger);
  if (o.valueDateTime) return fmtDate(o.valueDateTime);
  if (o.valueRange) {
    return `${quantityText(o.valueRange.low)}–${quantityText(o.valueRange.high)}`;
  }
  if (o.component && o.component.length) {
    return o.component.map((c) => {
      const v = c.valueQuantity ? fmtNumber(c.valueQuantity.value)
        : ccText(c.valueCodeableConcept) || c.valueString || '';
      return `${ccText(c.code)}: ${v}`;
    }).join('; ');
  }
  if (o.dataAbsentReason) return `(${ccText(o.dataAbsentReason)})`;
  return '';
}

export function obsUnit(o) {
  const q = o.valueQuantity;
  return q ? q.unit || q.code || '' : '';
}

/** The reference range of an Observation: {low, high, text}. */
export function refRange(o) {
  const r = (o.referenceRange || [])[0];
  if (!r) return null;
  const low = r.low && typeof r.low.value === 'number' ? r.low.value : null;
  const high = r.high && typeof r.high.value === 'number' ? r.high.value : null;
  let text = r.text || '';
  if (!text && (low !== null || high !== null)) {
    if (low !== null && high !== null) text = `${fmtNumber(low)}–${fmtNumber(high)}`;
    else if (low !== null) text = `≥ ${fmtNumber(low)}`;
    else text = `≤ ${fmtNumber(high)}`;
  }
  return { low, high, text };
}

// Observation.interpretation codes that mean "not normal"
// (v3-ObservationInterpretation).
const ABNORMAL = new Set(['A', 'AA', 'H', 'HH', 'HU', 'L', 'LL', 'LU', '>',
  '<', 'POS', 'DET', 'R', 'IND', 'E', 'W', 'U', 'D', 'B', 'CAR', 'EXP']);
const FLAG_TEXT = { H: 'High', HH: 'Critically high', HU: 'Very high',
  L: 'Low', LL: 'Critically low', LU: 'Very low', A: 'Abnormal',
  AA: 'Critically abnormal', N: 'Normal', POS: 'Positive', NEG: 'Negative',
  DET: 'Detected', ND: 'Not detected' };

/** {text, abnormal} from Observation.interpretation; null if none. */
export function interpretation(o) {
  const list = o.interpretation || [];
  if (!list.length) return null;
  let abnormal = false;
  const texts = list.map((cc) => {
    const code = ((cc.coding || [])[0] || {}).code || '';
    if (ABNORMAL.has(code)) abnormal = true;
    return cc.text || ((cc.coding || [])[0] || {}).display ||
      FLAG_TEXT[code] || code;
  });
  return { text: texts.filter(Boolean).join(', '), abnormal };
}

/** The date an Observation (or anything with effective[x]) refers to. */
export function effectiveOf(r) {
  return r.effectiveDateTime || r.effectiveInstant ||
    (r.effectivePeriod && r.effectivePeriod.start) || r.issued || '';
}

/** A reference's display text or its Type/id. */
export function refText(ref) {
  if (!ref) return '';
  return ref.display || ref.reference || '';
}
