// medrec's HL7 v2 feed driven by a real third-party MLLP client
// (node-hl7-client, npm): ADT and ORU messages sent to `medrec serve --mllp`
// over several connections, every ACK checked (MSA-1 and MSA-2), then the
// effects checked through the FHIR API and the interface log
// (`medrec hl7 messages --json`). Run with `node --test`; the program under
// test is $MEDREC (CTest sets it). All people in here are made up.
//
// node-hl7-client 3.2.0, as used here: a Connection sends the next message
// only once the previous one is acknowledged (waitAck, its default), so the
// ACKs of one connection come back in the order sent, and each is matched
// to its message by MSA-2 as well. Messages are sent only after the
// connection's 'connect' event: the library queues a message sent earlier
// and opens a second socket for it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, Message } from 'node-hl7-client';
import { HL7_2_5_1 } from 'node-hl7-client/hl7';

const here = path.dirname(fileURLToPath(import.meta.url));
const MEDREC =
  process.env.MEDREC ?? path.join(here, '..', '..', '..', 'build', 'medrec');

// A failure guard only: nothing here waits for time to pass.
const GUARD_MS = 60_000;

/** Resolves p, or rejects after GUARD_MS saying what was awaited. */
function guard(p, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no ${what} within ${GUARD_MS / 1000} s`)),
      GUARD_MS);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// ---- the sending systems -------------------------------------------------
const FAC = 'NORTHWIND';   // MSH-4.1 of both registered senders
const REG = 'NWREG';       // registration system (ADT)
const LAB = 'NWLAB';       // laboratory (ORU)
const ROGUE = 'NWROGUE';   // never registered

// PID-3 assigning authorities, one per rule of the spec, and the
// identifier system medrec must derive from each.
const AA = {
  iso: { cx4: ['NWH', '2.999.7.1', 'ISO'], system: 'urn:oid:2.999.7.1' },
  uri: { cx4: ['', 'https://id.example.org/nw/mrn', 'URI'],
    system: 'https://id.example.org/nw/mrn' },
  ns: { cx4: ['NWCLINIC'], system: 'urn:medrec:aa:NWCLINIC' },
  none: { cx4: [], system: `urn:medrec:aa:${FAC}` },   // MSH-4.1
};

/** A new message with MSH filled in (v2.5.1; MSH-7 is set by the library). */
function message(app, type, trigger, structure, controlId,
  facility = FAC) {
  const m = new Message({
    specification: new HL7_2_5_1(),
    messageHeader: { msh_9_1: type, msh_9_2: trigger, msh_9_3: structure,
      msh_10: controlId, msh_11_1: 'P' },
  });
  m.set('MSH.3.1', app);
  m.set('MSH.4.1', facility);
  m.set('MSH.5.1', 'MEDREC');
  m.set('MSH.6.1', 'NWHOSP');
  return m;
}

/** Segment fields are set with paths relative to the segment ('3.4.2');
 * the library refuses 'PID.3.4.2' on a segment. */
function fill(seg, fields) {
  for (const [p, v] of Object.entries(fields)) {
    if (v !== undefined && v !== '') seg.set(p, v);
  }
}

function pid(m, p) {
  const seg = m.addSegment('PID');
  fill(seg, {
    1: '1',
    '3.1': p.mrn,
    '3.4.1': p.aa.cx4[0],
    '3.4.2': p.aa.cx4[1],
    '3.4.3': p.aa.cx4[2],
    '3.5': 'MR',
    '5.1': p.family,
    '5.2': p.given,
    7: p.birth,
    8: p.sex,
  });
}

function evn(m, trigger, when) {
  fill(m.addSegment('EVN'), { 1: trigger, 2: when });
}

/** ADT^A04 (register an outpatient) or ADT^A01 (admit). */
function adt(trigger, controlId, p, { app = REG, facility = FAC } = {}) {
  const m = message(app, 'ADT', trigger, 'ADT_A01', controlId, facility);
  evn(m, trigger, '20261127090000');
  pid(m, p);
  const pv1 = m.addSegment('PV1');
  if (trigger === 'A01') {
    fill(pv1, { 1: '1', 2: 'I', '3.1': 'W3', '3.2': '301', '3.3': 'B',
      4: 'E', '7.1': 'D9001', '7.2': 'Exampledoc', '7.3': 'Robin',
      10: 'MED', '19.1': `V-${p.mrn}`, 44: '20261127091500' });
  } else {
    fill(pv1, { 1: '1', 2: 'O', '3.1': 'OPD', '19.1': `O-${p.mrn}`,
      44: '20261127090000' });
  }
  return m;
}

/** ORU^R01 with one OBR and an OBX per result
 * ({ type, code, text, value, units, range, flag }). */
function oru(controlId, p, results) {
  const m = message(LAB, 'ORU', 'R01', 'ORU_R01', controlId);
  pid(m, p);
  // An unsolicited result: no placer order number (OBR-2), only the lab's
  // filler number; medrec holds a result whose OBR-2 names an order it does
  // not know as unmatched.
  fill(m.addSegment('OBR'), { 1: '1', '3.1': `FL-${controlId}`,
    '3.2': LAB, '4.1': '24323-8',
    '4.2': 'Comprehensive metabolic panel', '4.3': 'LN',
    7: '20261127083000', 22: '20261127100000', 25: 'F' });
  results.forEach((r, i) => {
    const obx = m.addSegment('OBX');
    fill(obx, { 1: String(i + 1), 2: r.type, '3.1': r.code, '3.2': r.text,
      '3.3': 'LN', 11: 'F', 14: '20261127083000' });
    if (r.type === 'CWE') {
      fill(obx, { '5.1': r.value[0], '5.2': r.value[1], '5.3': r.value[2] });
    } else {
      fill(obx, { 5: r.value });   // escaped by the library (& -> \T\)
    }
    if (r.units) fill(obx, { '6.1': r.units, '6.2': r.units, '6.3': 'UCUM' });
    fill(obx, { 7: r.range, 8: r.flag });
  });
  return m;
}

// ---- MLLP connections ----------------------------------------------------
const client = new Client({ host: '127.0.0.1' });

/** One MLLP connection; send() resolves with the parsed ACK. */
class Link {
  constructor(port) {
    this.waiting = null;
    this.closed = false;
    this.conn = client.createConnection({ port, waitAck: true },
      (res) => this.#ack(res.getMessage()));
    this.conn.on('data.error', (e) => this.#fail(
      new Error(`node-hl7-client could not read an ACK: ${e.message}`)));
    this.ready = guard(new Promise((resolve) => {
      this.conn.once('connect', () => {
        // With connectionTimeout 0 the library does not report a close by
        // the peer; watch its socket so a closed connection fails at once.
        this.conn._socket?.once('close', () => {
          this.closed = true;
          this.#fail(new Error('the server closed the connection'));
        });
        resolve();
      });
    }), `MLLP connection to 127.0.0.1:${port}`);
  }

  #ack(msg) {
    const w = this.waiting;
    this.waiting = null;
    if (w) w.resolve(msg);
  }

  #fail(err) {
    const w = this.waiting;
    this.waiting = null;
    if (w) w.reject(err);
  }

  /** Sends m and returns its ACK (only one message in flight). */
  async send(m) {
    assert.equal(this.waiting, null, 'one message at a time per connection');
    assert.ok(!this.closed, 'connection is open');
    const id = m.get('MSH.10').toString();
    const ack = new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
    await this.conn.sendMessage(m);
    return guard(ack, `ACK for ${id}`);
  }

  close() {
    return this.conn.close();
  }
}

/** Checks an ACK against the message it answers; returns MSA-1. */
function checkAck(ack, sent, want) {
  const id = sent.get('MSH.10').toString();
  const raw = ack.toString().replaceAll('\r', '\n');
  const where = `ACK for ${id}:\n${raw}`;
  assert.equal(ack.get('MSH.9.1').toString(), 'ACK', where);
  assert.equal(ack.get('MSA.2').toString(), id, `MSA-2, ${where}`);
  assert.equal(ack.get('MSA.1').toString(), want, `MSA-1, ${where}`);
  // Sender and receiver swapped.
  assert.equal(ack.get('MSH.3.1').toString(),
    sent.get('MSH.5.1').toString(), `MSH-3, ${where}`);
  assert.equal(ack.get('MSH.5.1').toString(),
    sent.get('MSH.3.1').toString(), `MSH-5, ${where}`);
  assert.equal(ack.get('MSH.6.1').toString(),
    sent.get('MSH.4.1').toString(), `MSH-6, ${where}`);
  return ack.get('MSA.1').toString();
}

// ---- the server ----------------------------------------------------------
let dir;
let db;
let server;
let serverExit;
let fhirBase;
let mllpPort;
let token;
const links = [];

/** A port nobody listens on right now (the server may still lose a race
 * for it; start() then tries another). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts `medrec serve` with an MLLP port; resolves when it has printed
 * both the FHIR base URL and "mllp listening on", or rejects with its
 * stderr if it exits first. */
function start(port) {
  const proc = spawn(MEDREC, ['serve', '--db', db, '--http', '127.0.0.1:0',
    '--mllp', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const exit = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  const lines = readline.createInterface({ input: proc.stdout });
  let base;
  let mllp;
  const up = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      const b = /(https?:\/\/127\.0\.0\.1:\d+\/fhir)\b/.exec(line);
      if (b) base = b[1];
      const m = /mllp listening on 127\.0\.0\.1:(\d+)/.exec(line);
      if (m) mllp = Number(m[1]);
      if (base && mllp) resolve();
    });
    exit.then(({ code, signal }) => reject(new Error(
      `medrec serve exited (${code ?? signal}) before listening: ${stderr}`)));
  });
  return { proc, exit, up, get base() { return base; },
    get mllp() { return mllp; } };
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medrec-hl7-interop-'));
  db = path.join(dir, 'hl7.db');
  const run = (...args) => execFileSync(MEDREC, [...args, '--db', db],
    { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  run('init');
  run('hl7', 'sender', 'add', '--app', REG, '--facility', FAC,
    '--role', 'registration-system');
  run('hl7', 'sender', 'add', '--app', LAB, '--facility', FAC,
    '--role', 'lab-technician');
  token = run('token', 'create', 'interop', '--role',
    'records-technician').trim();
  assert.ok(token.length > 0, 'a token');

  let lastErr;
  for (let attempt = 0; attempt < 5 && !server; attempt++) {
    const port = await freePort();
    const s = start(port);
    try {
      await guard(s.up, 'listening lines from medrec serve');
      server = s.proc;
      serverExit = s.exit;
      fhirBase = s.base;
      mllpPort = s.mllp;
      assert.equal(mllpPort, port, 'MLLP on the port asked for');
    } catch (e) {
      lastErr = e;
      if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
      await s.exit;
    }
  }
  if (!server) throw lastErr;
});

after(async () => {
  await Promise.all(links.map((l) => l.close()));
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    const { code, signal, stderr } = await guard(serverExit,
      'server exit on SIGTERM');
    assert.equal(code, 0, `server exit on SIGTERM (signal ${signal}): ` +
      stderr.slice(-300));
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function openLink() {
  const l = new Link(mllpPort);
  links.push(l);
  await l.ready;
  return l;
}

// ---- FHIR and log helpers ------------------------------------------------
async function fhir(pathAndQuery) {
  const res = await fetch(`${fhirBase}/${pathAndQuery}`, {
    headers: { Authorization: `Bearer ${token}`,
      Accept: 'application/fhir+json' },
  });
  const body = await res.text();
  assert.equal(res.status, 200, `GET ${pathAndQuery}: ${body.slice(0, 300)}`);
  return JSON.parse(body);
}

const matches = (bundle) => (bundle.entry ?? [])
  .filter((e) => (e.search?.mode ?? 'match') === 'match')
  .map((e) => e.resource);

/** The patients with identifier system|value. */
async function patientsWith(system, value) {
  const b = await fhir('Patient?identifier=' +
    encodeURIComponent(`${system}|${value}`));
  assert.equal(b.resourceType, 'Bundle');
  return matches(b);
}

/** The one patient with identifier system|value (asserted). */
async function onePatient(p) {
  const found = await patientsWith(p.aa.system, p.mrn);
  assert.equal(found.length, 1,
    `one Patient with identifier ${p.aa.system}|${p.mrn}, found ` +
    found.length);
  const pat = found[0];
  assert.equal(pat.resourceType, 'Patient');
  assert.ok(pat.identifier.some((i) => i.system === p.aa.system &&
    i.value === p.mrn), `identifier ${p.aa.system}|${p.mrn} in ` +
    JSON.stringify(pat.identifier));
  assert.equal(pat.name?.[0]?.family, p.family);
  assert.deepEqual(pat.name?.[0]?.given, [p.given]);
  return pat;
}

async function observationsOf(patientId) {
  const b = await fhir(
    `Observation?subject=Patient/${encodeURIComponent(patientId)}&_count=100`);
  assert.equal(b.resourceType, 'Bundle');
  return matches(b);
}

function hl7Log() {
  const out = execFileSync(MEDREC, ['hl7', 'messages', '--db', db, '--json',
    '--limit', '1000'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  return out.split('\n').filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

// ---- the data (made up) --------------------------------------------------
const ada = { mrn: 'NW-100001', aa: AA.iso, family: 'Quillfeather',
  given: 'Ada', birth: '19710304', sex: 'F' };
const sent = new Map();   // control id -> { msg, want, status }

const PANEL = [
  { type: 'NM', code: '2823-3', text: 'Potassium [Moles/volume] in Serum',
    value: '5.9', units: 'mmol/L', range: '3.5-5.1', flag: 'H' },
  { type: 'NM', code: '2951-2', text: 'Sodium [Moles/volume] in Serum',
    value: '140', units: 'mmol/L', range: '136-145', flag: 'N' },
  { type: 'ST', code: '8251-1', text: 'Service comment',
    value: 'Slightly haemolysed; K+ & Na+ rechecked' },
  { type: 'CWE', code: '882-1', text: 'ABO and Rh group [Type] in Blood',
    value: ['278149003', 'Blood group A Rh(D) positive', 'SCT'] },
];

/** Sends m on link l, checks the ACK's MSA-1 is want; returns the ACK.
 * Every message is recorded first with the log status it must get, so the
 * log test sees it even when its own test failed. */
async function exchange(l, m, want,
  status = want === 'AR' ? 'rejected' : 'applied') {
  const id = m.get('MSH.10').toString();
  if (!sent.has(id)) sent.set(id, { msg: m, want, status });
  const ack = await l.send(m);
  checkAck(ack, m, want);
  return ack;
}

// ---- the tests -----------------------------------------------------------
test('ADT^A04 registers a patient', async () => {
  const l = await openLink();
  await exchange(l, adt('A04', 'IOP-A04-1', ada), 'AA');
  await onePatient(ada);
});

test('ADT^A01 admits the same patient (no second Patient)', async () => {
  const l = links[0];
  await exchange(l, adt('A01', 'IOP-A01-1', ada), 'AA');
  await onePatient(ada);
});

test('ORU^R01 files the results; a repeat is acknowledged, not refiled',
  async () => {
    const l = links[0];
    const ack = await exchange(l, oru('IOP-ORU-1', ada, PANEL), 'AA');
    assert.equal(ack.get('ERR').toString(), '',
      `no ERR (the patient is known): ${ack.toString()}`);

    // The same message again, on a new connection, as after a lost ACK.
    const l2 = await openLink();
    const again = await exchange(l2, oru('IOP-ORU-1', ada, PANEL), 'AA');
    assert.equal(again.toString(), ack.toString(), 'the stored ACK again');

    const pat = await onePatient(ada);
    const obs = await observationsOf(pat.id);
    assert.equal(obs.length, PANEL.length,
      'one Observation per OBX, filed once: ' +
      JSON.stringify(obs.map((o) => o.code)));
    const byCode = (c) => {
      const o = obs.find((x) => x.code?.coding?.some((k) => k.code === c));
      assert.ok(o, `an Observation with code ${c}`);
      assert.equal(o.subject?.reference, `Patient/${pat.id}`);
      return o;
    };
    const k = byCode('2823-3');
    assert.equal(k.valueQuantity?.value, 5.9, JSON.stringify(k));
    assert.equal(k.valueQuantity?.unit ?? k.valueQuantity?.code, 'mmol/L');
    const rr = k.referenceRange?.[0];
    assert.ok(rr && ((rr.low?.value === 3.5 && rr.high?.value === 5.1) ||
      rr.text === '3.5-5.1'), `reference range: ${JSON.stringify(rr)}`);
    assert.ok(k.interpretation?.some((i) =>
      i.coding?.some((c) => c.code === 'H')),
    `interpretation H: ${JSON.stringify(k.interpretation)}`);
    assert.equal(byCode('2951-2').valueQuantity?.value, 140);
    assert.equal(byCode('8251-1').valueString,
      'Slightly haemolysed; K+ & Na+ rechecked', 'ST unescaped');
    assert.ok(byCode('882-1').valueCodeableConcept?.coding?.some((c) =>
      c.code === '278149003'), 'CWE value');
  });

test('3 connections x 10 messages in flight at once', async () => {
  const CONNS = 3;
  const PAIRS = 5;   // A04 then ORU for the same patient, 5 times
  const rules = Object.values(AA);
  const people = [];
  const conns = await Promise.all(
    Array.from({ length: CONNS }, () => openLink()));
  await Promise.all(conns.map(async (l, c) => {
    for (let k = 0; k < PAIRS; k++) {
      const p = { mrn: `NW-2${c}${k}`, aa: rules[(c + k) % rules.length],
        family: `Loadtest${'ABCDE'[k]}`, given: `Conn${c}`,
        birth: `19${60 + c * 10 + k}0615`, sex: k % 2 ? 'M' : 'F' };
      people.push(p);
      // On one connection the A04 is acknowledged (committed) before the
      // ORU is sent, so the ORU always finds its patient.
      for (const m of [
        adt('A04', `IOP-C${c}-${k}-A04`, p),
        oru(`IOP-C${c}-${k}-ORU`, p, PANEL.slice(0, 2)),
      ]) {
        await exchange(l, m, 'AA');
      }
    }
  }));
  assert.equal(people.length, CONNS * PAIRS);
  for (const p of people) {
    const pat = await onePatient(p);
    const obs = await observationsOf(pat.id);
    assert.equal(obs.length, 2, `Observations of ${p.mrn}`);
  }
});

test('each patient an A04 registered is found by the next message, ' +
  'whatever other connections send meanwhile', async () => {
  // Connection a registers a new patient while connection b sends a result
  // for a patient nobody registered (held as unmatched, AA with a warning);
  // once both are answered, a result for the new patient follows on a.
  // medrec answered the A04 only after committing it, so that result must
  // find its patient every time.
  const [a, b] = await Promise.all([openLink(), openLink()]);
  const ROUNDS = 50;
  for (let i = 0; i < ROUNDS; i++) {
    const n = String(i).padStart(5, '0');
    const p = { mrn: `NW-3${n}`, aa: AA.iso, family: 'Interleave',
      given: `Round${i}`, birth: '19750505', sex: 'F' };
    const ghost = { mrn: `NW-4${n}`, aa: AA.iso, family: 'Unregistered',
      given: `Round${i}`, birth: '19650203', sex: 'M' };
    const [, heldAck] = await Promise.all([
      exchange(a, adt('A04', `IOP-IL-X${i}`, p), 'AA'),
      exchange(b, oru(`IOP-IL-Y${i}`, ghost, PANEL.slice(0, 1)), 'AA',
        'unmatched'),
    ]);
    assert.equal(heldAck.get('ERR.4').toString(), 'W', 'held: a warning');
    const ack = await exchange(a, oru(`IOP-IL-Z${i}`, p, PANEL.slice(0, 1)),
      'AA');
    assert.equal(ack.get('ERR').toString(), '',
      `round ${i}: the result for ${p.mrn} (registered by the A04 just ` +
      `acknowledged) must be filed:\n${ack.toString().replaceAll('\r', '\n')}`);
  }
});

test('ORU for an unknown patient: AA with a warning ERR, held unmatched',
  async () => {
    const ghost = { mrn: 'NW-404404', aa: AA.iso, family: 'Nobodyknows',
      given: 'Kit', birth: '19880808', sex: 'F' };
    const m = oru('IOP-UNMATCHED-1', ghost, PANEL.slice(0, 1));
    const ack = await exchange(links[0], m, 'AA', 'unmatched');
    assert.equal(ack.get('ERR.4').toString(), 'W',
      `a warning ERR: ${ack.toString().replaceAll('\r', '\n')}`);
    assert.equal((await patientsWith(AA.iso.system, ghost.mrn)).length, 0,
      'no Patient created by a result');
  });

test('unregistered senders get AR and change nothing', async () => {
  const l = links[0];
  const nobody = { mrn: 'NW-999001', aa: AA.iso, family: 'Outsider',
    given: 'Nemo', birth: '19900101', sex: 'U' };
  await exchange(l, adt('A04', 'IOP-ROGUE-1', nobody, { app: ROGUE }), 'AR');

  // A registered application, but from a facility it was not registered for.
  await exchange(l, adt('A04', 'IOP-ELSEWHERE-1', nobody,
    { facility: 'ELSEWHERE' }), 'AR');

  assert.equal((await patientsWith(AA.iso.system, nobody.mrn)).length, 0,
    'no Patient from a refused message');
});

test('the interface log: each message once, the repeat counted', async () => {
  const log = hl7Log();
  const ours = log.filter((e) => sent.has(e.control_id));
  for (const id of sent.keys()) {
    const rows = ours.filter((e) => e.control_id === id);
    assert.equal(rows.length, 1, `one log row for ${id}: ` +
      JSON.stringify(rows));
  }
  assert.equal(ours.length, sent.size);
  const patientRef = `Patient/${(await onePatient(ada)).id}`;
  for (const e of ours) {
    const { msg, want, status } = sent.get(e.control_id);
    const f = (p) => msg.get(p).toString();
    assert.equal(e.type, `${f('MSH.9.1')}^${f('MSH.9.2')}`, JSON.stringify(e));
    assert.equal(e.sender, `${f('MSH.3.1')}|${f('MSH.4.1')}`,
      JSON.stringify(e));
    assert.equal(e.ack, want, JSON.stringify(e));
    assert.equal(e.status, status, JSON.stringify(e));
    assert.equal(e.repeats, e.control_id === 'IOP-ORU-1' ? 1 : 0,
      `repeats: ${JSON.stringify(e)}`);
    if (['IOP-A04-1', 'IOP-A01-1', 'IOP-ORU-1'].includes(e.control_id)) {
      assert.equal(e.patient, patientRef, JSON.stringify(e));
    }
  }
});
