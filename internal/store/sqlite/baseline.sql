-- The schema migrations 0001 to 0005 leave, written at once: a new state
-- file (and the scratch store of a read-only command) starts here instead
-- of creating the tables of 0001 and rebuilding them in 0005. Migrations
-- after 0005 apply to it one by one. TestBaselineIsTheMigrations holds it
-- to the migrations: same tables, columns, keys, indexes and rows.

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    token      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE rotations (
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
CREATE UNIQUE INDEX rotations_one_active ON rotations (credential) WHERE status = 'active';
CREATE INDEX rotations_by_credential ON rotations (credential, id);

CREATE TABLE versions (
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
CREATE UNIQUE INDEX versions_one_pending ON versions (credential) WHERE stage = 'pending';
CREATE UNIQUE INDEX versions_one_current ON versions (credential) WHERE stage = 'current';
CREATE UNIQUE INDEX versions_one_previous ON versions (credential) WHERE stage = 'previous';
CREATE UNIQUE INDEX versions_one_per_rotation ON versions (rotation_id) WHERE rotation_id IS NOT NULL;

CREATE TABLE steps (
    id          INTEGER PRIMARY KEY,
    rotation_id INTEGER NOT NULL REFERENCES rotations (id),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX steps_by_rotation ON steps (rotation_id, id);

CREATE TABLE deliveries (
    rotation_id INTEGER NOT NULL REFERENCES rotations (id),
    credential  TEXT NOT NULL,
    target      TEXT NOT NULL,
    state       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    error       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (rotation_id, target)
) STRICT;
CREATE INDEX deliveries_latest ON deliveries (credential, target, rotation_id);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    credential  TEXT NOT NULL,
    rotation_id INTEGER NOT NULL,
    event       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    detail      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_credential ON audit (credential, id);

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
INSERT INTO store_meta (key, value) VALUES ('id', lower(hex(randomblob(16))));
