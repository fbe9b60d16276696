/*
 * SQLite schema migrations, numbered from 1. Migration N brings the
 * database from user_version N-1 to N; they are applied in order at open,
 * each in its own transaction. Never edit a released migration: add one.
 */
#ifndef MR_STORE_SCHEMA_H
#define MR_STORE_SCHEMA_H

static const char *const mr__sqlite_migrations[] = {
    /* 1: resources, versions, search indexes, counters, audit. */
    "CREATE TABLE resource("
    "  rid INTEGER PRIMARY KEY,"
    "  type TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  version INTEGER NOT NULL," /* current version */
    "  updated INTEGER NOT NULL," /* UTC ms of the current version */
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE(type, id));"
    "CREATE TABLE version("
    "  vid INTEGER PRIMARY KEY," /* global order of writes */
    "  rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  version INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  author TEXT NOT NULL,"
    "  reason TEXT,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  json BLOB,"
    "  UNIQUE(rid, version));"
    "CREATE TRIGGER version_append_only_u BEFORE UPDATE ON version BEGIN"
    "  SELECT RAISE(ABORT, 'resource versions are never changed'); END;"
    "CREATE TRIGGER version_append_only_d BEFORE DELETE ON version BEGIN"
    "  SELECT RAISE(ABORT, 'resource versions are never removed'); END;"
    /* Search indexes: entries of current versions only. Each is
     * clustered by resource (so a new version replaces its entries with
     * one range delete) with a second index by value for searching. Empty
     * strings stand for absent values (primary-key columns are NOT NULL). */
    "CREATE TABLE ix_string(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, norm TEXT NOT NULL, exact TEXT NOT NULL,"
    "  PRIMARY KEY(rid, key, norm, exact)) WITHOUT ROWID;"
    "CREATE INDEX ix_string_v ON ix_string(key, norm);"
    "CREATE TABLE ix_token(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, code TEXT NOT NULL, system TEXT NOT NULL,"
    "  PRIMARY KEY(rid, key, code, system)) WITHOUT ROWID;"
    "CREATE INDEX ix_token_v ON ix_token(key, code, system);"
    "CREATE TABLE ix_date(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,"
    "  PRIMARY KEY(rid, key, lo, hi)) WITHOUT ROWID;"
    "CREATE INDEX ix_date_v ON ix_date(key, lo);"
    "CREATE TABLE ix_ref(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, ref TEXT NOT NULL,"
    "  PRIMARY KEY(rid, key, ref)) WITHOUT ROWID;"
    "CREATE INDEX ix_ref_v ON ix_ref(key, ref);"
    "CREATE TABLE ix_number(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, value REAL NOT NULL,"
    "  PRIMARY KEY(rid, key, value)) WITHOUT ROWID;"
    "CREATE INDEX ix_number_v ON ix_number(key, value);"
    "CREATE TABLE ix_quantity(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, value REAL NOT NULL, system TEXT NOT NULL,"
    "  code TEXT NOT NULL,"
    "  PRIMARY KEY(rid, key, value, system, code)) WITHOUT ROWID;"
    "CREATE INDEX ix_quantity_v ON ix_quantity(key, value);"
    "CREATE TABLE ix_uri(rid INTEGER NOT NULL REFERENCES resource(rid),"
    "  key INTEGER NOT NULL, uri TEXT NOT NULL,"
    "  PRIMARY KEY(rid, key, uri)) WITHOUT ROWID;"
    "CREATE INDEX ix_uri_v ON ix_uri(key, uri);"
    "CREATE TABLE seq(name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
    "  WITHOUT ROWID;"
    "CREATE TABLE audit("
    "  seq INTEGER PRIMARY KEY,"
    "  ts INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  role TEXT NOT NULL,"
    "  source TEXT,"
    "  action TEXT NOT NULL,"
    "  outcome TEXT NOT NULL,"
    "  type TEXT, id TEXT, patient TEXT, query TEXT, detail TEXT);"
    "CREATE INDEX audit_patient ON audit(patient) WHERE patient IS NOT NULL;"
    "CREATE TRIGGER audit_append_only_u BEFORE UPDATE ON audit BEGIN"
    "  SELECT RAISE(ABORT, 'audit entries are append-only'); END;"
    "CREATE TRIGGER audit_append_only_d BEFORE DELETE ON audit BEGIN"
    "  SELECT RAISE(ABORT, 'audit entries are append-only'); END;",
    /* 2: security documents (users, API tokens, emergency-access grants,
     * the access policy), versioned like records: a change appends. */
    "CREATE TABLE secdoc("
    "  kind TEXT NOT NULL," /* user, token, grant, policy */
    "  name TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  author TEXT NOT NULL,"
    "  json TEXT NOT NULL,"
    "  PRIMARY KEY(kind, name, version)) WITHOUT ROWID;"
    "CREATE TRIGGER secdoc_append_only_u BEFORE UPDATE ON secdoc BEGIN"
    "  SELECT RAISE(ABORT, 'security documents are never changed'); END;"
    "CREATE TRIGGER secdoc_append_only_d BEFORE DELETE ON secdoc BEGIN"
    "  SELECT RAISE(ABORT, 'security documents are never removed'); END;",
    /* 3: the tamper-evident audit trail (docs/audit.md). Each entry gets
     * its chain hash; entries written before this migration are chained
     * by the store right after it, in the same transaction, which is the
     * one update the new trigger lets through (setting prev and hash of a
     * row that has none, changing nothing else). Checkpoints sign the
     * chain with a key kept outside the database; its public half is
     * registered here. */
    "ALTER TABLE audit ADD COLUMN prev BLOB;"
    "ALTER TABLE audit ADD COLUMN hash BLOB;"
    "DROP TRIGGER audit_append_only_u;"
    "CREATE TRIGGER audit_append_only_u BEFORE UPDATE ON audit"
    "  WHEN OLD.hash IS NOT NULL OR NEW.hash IS NULL OR NEW.prev IS NULL"
    "  OR NEW.seq IS NOT OLD.seq OR NEW.ts IS NOT OLD.ts"
    "  OR NEW.actor IS NOT OLD.actor OR NEW.role IS NOT OLD.role"
    "  OR NEW.source IS NOT OLD.source OR NEW.action IS NOT OLD.action"
    "  OR NEW.outcome IS NOT OLD.outcome OR NEW.type IS NOT OLD.type"
    "  OR NEW.id IS NOT OLD.id OR NEW.patient IS NOT OLD.patient"
    "  OR NEW.query IS NOT OLD.query OR NEW.detail IS NOT OLD.detail BEGIN"
    "  SELECT RAISE(ABORT, 'audit entries are append-only'); END;"
    /* audit search: by time, and the (rare) emergency accesses in trail
     * order. Every index costs each audited read an insert, so there is
     * none by user: --user is filtered within a time range or a chart. */
    "CREATE INDEX audit_ts ON audit(ts);"
    "CREATE INDEX audit_emergency ON audit(seq)"
    "  WHERE detail GLOB 'emergency*';"
    "CREATE TABLE audit_key("
    "  key_id TEXT PRIMARY KEY,"  /* hex of BLAKE2b(public_key)[0..8] */
    "  public_key BLOB NOT NULL," /* Ed25519, 32 bytes */
    "  created INTEGER NOT NULL);"
    "CREATE TABLE audit_checkpoint("
    "  seq INTEGER PRIMARY KEY," /* the audit entry it covers */
    "  hash BLOB NOT NULL,"      /* that entry's chain hash */
    "  ts INTEGER NOT NULL,"
    "  key_id TEXT NOT NULL REFERENCES audit_key(key_id),"
    "  sig BLOB NOT NULL);" /* Ed25519 over (tag, seq, ts, hash) */
    "CREATE TRIGGER audit_key_append_only_u BEFORE UPDATE ON audit_key BEGIN"
    "  SELECT RAISE(ABORT, 'audit keys are never changed'); END;"
    "CREATE TRIGGER audit_key_append_only_d BEFORE DELETE ON audit_key BEGIN"
    "  SELECT RAISE(ABORT, 'audit keys are never removed'); END;"
    "CREATE TRIGGER audit_checkpoint_append_only_u BEFORE UPDATE ON"
    "  audit_checkpoint BEGIN"
    "  SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;"
    "CREATE TRIGGER audit_checkpoint_append_only_d BEFORE DELETE ON"
    "  audit_checkpoint BEGIN"
    "  SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;",

    /* 4: the HL7 v2 interface log (docs/hl7.md). Every message received
     * is kept as it arrived, with what became of it, so it can be
     * searched, acknowledged again and replayed. The bytes and identity
     * of a message never change; its status does (a replay after a fix).
     * One row per sender and control id: a repeat is counted, not
     * stored again. Rejected messages (unknown sender, unreadable) are
     * not keyed: a control id is only the sender's once it is known. */
    "CREATE TABLE hl7_message("
    "  id INTEGER PRIMARY KEY,"
    "  received INTEGER NOT NULL," /* UTC ms */
    "  sender TEXT NOT NULL,"      /* MSH-3.1|MSH-4.1 */
    "  control_id TEXT NOT NULL,"  /* MSH-10 */
    "  type TEXT NOT NULL,"        /* MSH-9.1^MSH-9.2 */
    "  source TEXT NOT NULL,"      /* peer address or cli */
    "  raw BLOB,"                  /* NULL when the sender is unknown */
    "  status TEXT NOT NULL,"
    "  ack_code TEXT NOT NULL,"
    "  ack BLOB,"
    "  detail TEXT,"
    "  patient TEXT,"
    "  resources TEXT,"
    "  updated INTEGER NOT NULL,"
    "  repeats INTEGER NOT NULL DEFAULT 0);"
    "CREATE UNIQUE INDEX hl7_message_key ON hl7_message(sender, control_id)"
    "  WHERE status <> 'rejected';"
    "CREATE INDEX hl7_message_status ON hl7_message(status, id);"
    "CREATE TRIGGER hl7_message_keep_u BEFORE UPDATE ON hl7_message"
    "  WHEN NEW.id IS NOT OLD.id OR NEW.received IS NOT OLD.received"
    "  OR NEW.sender IS NOT OLD.sender OR NEW.control_id IS NOT OLD.control_id"
    "  OR NEW.type IS NOT OLD.type OR NEW.raw IS NOT OLD.raw BEGIN"
    "  SELECT RAISE(ABORT, 'received messages are kept as they came'); END;"
    "CREATE TRIGGER hl7_message_keep_d BEFORE DELETE ON hl7_message BEGIN"
    "  SELECT RAISE(ABORT, 'received messages are never removed'); END;",
};

#define MR__SQLITE_NMIGRATIONS                                                 \
    (sizeof(mr__sqlite_migrations) / sizeof(mr__sqlite_migrations[0]))

#endif
