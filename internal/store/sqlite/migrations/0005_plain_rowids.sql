-- rotor: rebuilds tables
--
-- Ids become plain rowids instead of AUTOINCREMENT. rotor never deletes a
-- row of these tables, so the next id is the largest plus one either way;
-- what AUTOINCREMENT added was an update of sqlite_sequence on every
-- insert, one more page written to the WAL by nearly every journal write.
--
-- SQLite cannot change a column's definition in place: each table is
-- created anew, filled, dropped and renamed, with foreign keys off for the
-- migration (the runner checks them all before it commits), and its
-- indexes are created again.

CREATE TABLE rotations_new (
    id              INTEGER PRIMARY KEY,
    credential      TEXT NOT NULL,
    status          TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    triggered_by    TEXT NOT NULL,
    revoke          INTEGER NOT NULL,
    step            TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    from_version_id INTEGER REFERENCES versions (id),
    to_version_id   INTEGER REFERENCES versions (id),
    rollback_sealed BLOB,
    outcome         TEXT NOT NULL DEFAULT '',
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    applied_at      INTEGER
) STRICT;
INSERT INTO rotations_new (id, credential, status, strategy, triggered_by, revoke, step, error,
        from_version_id, to_version_id, rollback_sealed, outcome, started_at, updated_at, finished_at, applied_at)
    SELECT id, credential, status, strategy, triggered_by, revoke, step, error,
        from_version_id, to_version_id, rollback_sealed, outcome, started_at, updated_at, finished_at, applied_at
    FROM rotations;
DROP TABLE rotations;
ALTER TABLE rotations_new RENAME TO rotations;
CREATE UNIQUE INDEX rotations_one_active ON rotations (credential) WHERE status = 'active';
CREATE INDEX rotations_by_credential ON rotations (credential, id);

CREATE TABLE versions_new (
    id           INTEGER PRIMARY KEY,
    credential   TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    role         TEXT NOT NULL,
    stage        TEXT NOT NULL,
    rotation_id  INTEGER REFERENCES rotations (id),
    sealed       BLOB,
    fingerprint  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at   INTEGER,
    UNIQUE (credential, seq)
) STRICT;
INSERT INTO versions_new (id, credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at, retired_at)
    SELECT id, credential, seq, role, stage, rotation_id, sealed, fingerprint, created_at, activated_at, retired_at
    FROM versions;
DROP TABLE versions;
ALTER TABLE versions_new RENAME TO versions;
CREATE UNIQUE INDEX versions_one_pending ON versions (credential) WHERE stage = 'pending';
CREATE UNIQUE INDEX versions_one_current ON versions (credential) WHERE stage = 'current';
CREATE UNIQUE INDEX versions_one_previous ON versions (credential) WHERE stage = 'previous';
CREATE UNIQUE INDEX versions_one_per_rotation ON versions (rotation_id) WHERE rotation_id IS NOT NULL;

CREATE TABLE steps_new (
    id          INTEGER PRIMARY KEY,
    rotation_id INTEGER NOT NULL REFERENCES rotations (id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
INSERT INTO steps_new (id, rotation_id, name, status, detail, at)
    SELECT id, rotation_id, name, status, detail, at FROM steps;
DROP TABLE steps;
ALTER TABLE steps_new RENAME TO steps;
CREATE INDEX steps_by_rotation ON steps (rotation_id, id);

CREATE TABLE audit_new (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    credential  TEXT NOT NULL,
    rotation_id INTEGER NOT NULL,
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL
) STRICT;
INSERT INTO audit_new (id, at, credential, rotation_id, event, actor, detail)
    SELECT id, at, credential, rotation_id, event, actor, detail FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_by_credential ON audit (credential, id);
