-- Services, cases and what the lifecycle writes around them. Kept identical in shape to the
-- SQLite set (tests/api/migrations.rs compares them); only boolean literals differ.

CREATE TABLE services (
    id                     TEXT PRIMARY KEY NOT NULL,
    agency_id              TEXT NOT NULL REFERENCES agencies (id),
    title                  TEXT NOT NULL,
    description            TEXT NOT NULL,
    price_minor            BIGINT NOT NULL CHECK (price_minor >= 0),
    currency               TEXT NOT NULL,
    active                 BOOLEAN NOT NULL DEFAULT TRUE,
    default_priority       TEXT NOT NULL CHECK (default_priority IN ('low', 'normal', 'high', 'urgent')),
    required_data_template TEXT NOT NULL,
    version                BIGINT NOT NULL DEFAULT 1,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL
);
CREATE INDEX services_agency_idx ON services (agency_id, id);
CREATE INDEX services_active_idx ON services (active, id);

-- One row per year: the last case number handed out. Incremented in the creating transaction,
-- so two creators queue on the row and never share a number.
CREATE TABLE case_counters (
    year INTEGER PRIMARY KEY NOT NULL,
    last BIGINT NOT NULL
);

CREATE TABLE cases (
    id              TEXT PRIMARY KEY NOT NULL,
    number          TEXT NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL,
    service_id      TEXT NOT NULL REFERENCES services (id),
    agency_id       TEXT NOT NULL REFERENCES agencies (id),
    client_id       TEXT NOT NULL REFERENCES users (id),
    status          TEXT NOT NULL CHECK (status IN ('awaiting_payment', 'payment_failed', 'in_approval',
                        'approved', 'rejected', 'in_progress', 'suspended', 'completed', 'closed', 'cancelled')),
    priority        TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    payment_method  TEXT NOT NULL CHECK (payment_method IN ('card', 'bank_transfer')),
    payment_state   TEXT NOT NULL CHECK (payment_state IN ('pending', 'paid', 'failed')),
    assignee_id     TEXT REFERENCES users (id),
    disputed        BOOLEAN NOT NULL DEFAULT FALSE,
    resolution_type TEXT,
    resolution      TEXT,
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    closed_at       TIMESTAMP
);
-- Every list filter has an index ending in id, so "newest first after the cursor" is a range scan.
CREATE UNIQUE INDEX cases_number_key ON cases (number);
CREATE INDEX cases_agency_idx ON cases (agency_id, id);
CREATE INDEX cases_agency_status_idx ON cases (agency_id, status, id);
CREATE INDEX cases_client_idx ON cases (client_id, id);
CREATE INDEX cases_status_idx ON cases (status, id);
CREATE INDEX cases_assignee_idx ON cases (assignee_id, id);
CREATE INDEX cases_service_idx ON cases (service_id, id);
CREATE INDEX cases_priority_idx ON cases (priority, id);
CREATE INDEX cases_created_idx ON cases (created_at, id);

CREATE TABLE case_agents (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    assigned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX case_agents_user_idx ON case_agents (user_id, case_id);

-- The required-data form of one case, copied from the service's template at purchase.
CREATE TABLE case_fields (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    key        TEXT NOT NULL,
    position   INTEGER NOT NULL,
    label      TEXT NOT NULL,
    field_type TEXT NOT NULL CHECK (field_type IN ('text', 'long_text', 'number', 'date', 'boolean',
                   'choice', 'image', 'file', 'location')),
    required   BOOLEAN NOT NULL,
    options    TEXT,
    help       TEXT,
    value      TEXT,
    PRIMARY KEY (case_id, key)
);

-- Append-only and hash-chained: each row's hash covers its content and the previous row's hash.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY NOT NULL,
    seq         BIGINT NOT NULL,
    entity      TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    case_id     TEXT,
    action      TEXT NOT NULL,
    field       TEXT,
    old_value   TEXT,
    new_value   TEXT,
    actor_id    TEXT,
    actor_role  TEXT,
    request_id  TEXT,
    created_at  TIMESTAMP NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE UNIQUE INDEX audit_log_seq_key ON audit_log (seq);
CREATE INDEX audit_log_case_idx ON audit_log (case_id, seq);
CREATE INDEX audit_log_created_idx ON audit_log (created_at, seq);

-- The chain's head: writers update this one row first, so appends are serialized on both engines.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- The first response to each (user, Idempotency-Key), replayed to retries for 24 hours.
CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL REFERENCES users (id),
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    location    TEXT,
    etag        TEXT,
    body        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
