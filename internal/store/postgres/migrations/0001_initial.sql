-- Runs with search_path set to rotor's schema. Times are UTC unix
-- nanoseconds (timestamptz keeps only microseconds, and the store promises
-- the nanosecond); NULL is the zero time. Zero ids are NULL so that foreign
-- keys and the partial unique indexes ignore them.

-- A released lease keeps its row (holder '') so its token never goes back.
CREATE TABLE leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at bigint NOT NULL,
    token      bigint NOT NULL
);

CREATE TABLE rotations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    credential      text NOT NULL,
    status          text NOT NULL,
    strategy        text NOT NULL,
    triggered_by    text NOT NULL,
    revoke          boolean NOT NULL,
    step            text NOT NULL DEFAULT '',
    error           text NOT NULL DEFAULT '',
    from_version_id bigint,
    to_version_id   bigint,
    rollback_sealed bytea,
    outcome         text NOT NULL DEFAULT '',
    started_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    finished_at     bigint,
    applied_at      bigint
);

CREATE UNIQUE INDEX rotations_one_active ON rotations (credential) WHERE status = 'active';
CREATE INDEX rotations_by_credential ON rotations (credential, id);

CREATE TABLE versions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    credential   text NOT NULL,
    seq          bigint NOT NULL,
    role         text NOT NULL,
    stage        text NOT NULL,
    rotation_id  bigint REFERENCES rotations (id),
    sealed       bytea,
    fingerprint  text NOT NULL,
    created_at   bigint NOT NULL,
    activated_at bigint,
    retired_at   bigint,
    UNIQUE (credential, seq)
);

ALTER TABLE rotations ADD FOREIGN KEY (from_version_id) REFERENCES versions (id);
ALTER TABLE rotations ADD FOREIGN KEY (to_version_id) REFERENCES versions (id);

CREATE UNIQUE INDEX versions_one_pending ON versions (credential) WHERE stage = 'pending';
CREATE UNIQUE INDEX versions_one_current ON versions (credential) WHERE stage = 'current';
CREATE UNIQUE INDEX versions_one_previous ON versions (credential) WHERE stage = 'previous';
CREATE UNIQUE INDEX versions_one_per_rotation ON versions (rotation_id) WHERE rotation_id IS NOT NULL;

CREATE TABLE steps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rotation_id bigint NOT NULL REFERENCES rotations (id),
    name        text NOT NULL,
    status      text NOT NULL,
    detail      text NOT NULL,
    at          bigint NOT NULL
);

CREATE INDEX steps_by_rotation ON steps (rotation_id, id);

CREATE TABLE deliveries (
    rotation_id bigint NOT NULL REFERENCES rotations (id),
    credential  text NOT NULL,
    target      text NOT NULL,
    state       text NOT NULL,
    fingerprint text NOT NULL,
    attempts    bigint NOT NULL,
    error       text NOT NULL,
    detail      text NOT NULL,
    updated_at  bigint NOT NULL,
    PRIMARY KEY (rotation_id, target)
);

CREATE INDEX deliveries_latest ON deliveries (credential, target, rotation_id);

-- No foreign key: the audit trail outlives what it describes.
CREATE TABLE audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          bigint NOT NULL,
    credential  text NOT NULL,
    rotation_id bigint NOT NULL,
    event       text NOT NULL,
    actor       text NOT NULL,
    detail      text NOT NULL
);

CREATE INDEX audit_by_credential ON audit (credential, id);
