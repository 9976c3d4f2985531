-- The tables read by primary key on every request become WITHOUT ROWID tables: their rows
-- sit in the primary key's own b-tree, so a lookup by id is one b-tree search instead of two
-- (the key's index, then the row by rowid), and each lookup touches one cold page fewer
-- (bench/RESULTS.md, sixth session). PostgreSQL has no rowid; it needs no such change.
--
-- SQLite's procedure for changing a table (https://sqlite.org/lang_altertable.html#otheralter):
-- a copy under a new name, the old table dropped, the copy renamed. Foreign keys must be off
-- meanwhile, which SQLite ignores inside a transaction, so this migration opens its own
-- (metadata.toml) and turns them off first: with them on, dropping `users` would delete every
-- refresh token through its ON DELETE CASCADE. The rows are copied as they are, so no key can
-- break.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE agencies_rebuilt (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    contact_email TEXT,
    active        BOOLEAN NOT NULL DEFAULT 1,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
) WITHOUT ROWID;
INSERT INTO agencies_rebuilt SELECT * FROM agencies;
DROP TABLE agencies;
ALTER TABLE agencies_rebuilt RENAME TO agencies;
CREATE UNIQUE INDEX agencies_name_key ON agencies (name);

CREATE TABLE users_rebuilt (
    id                 TEXT PRIMARY KEY NOT NULL,
    email              TEXT NOT NULL,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('platform', 'agency', 'agent', 'client')),
    agency_id          TEXT REFERENCES agencies (id),
    is_admin           BOOLEAN NOT NULL DEFAULT 0,
    locale             TEXT NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'it', 'es', 'pl')),
    active             BOOLEAN NOT NULL DEFAULT 1,
    password_hash      TEXT NOT NULL,
    id_document_type   TEXT,
    id_document_number TEXT,
    account_number     TEXT,
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    CHECK ((role IN ('agency', 'agent')) = (agency_id IS NOT NULL))
) WITHOUT ROWID;
INSERT INTO users_rebuilt SELECT * FROM users;
DROP TABLE users;
ALTER TABLE users_rebuilt RENAME TO users;
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_agency_id_idx ON users (agency_id, id);
CREATE INDEX users_role_idx ON users (role, id);

CREATE TABLE services_rebuilt (
    id                     TEXT PRIMARY KEY NOT NULL,
    agency_id              TEXT NOT NULL REFERENCES agencies (id),
    title                  TEXT NOT NULL,
    description            TEXT NOT NULL,
    price_minor            BIGINT NOT NULL CHECK (price_minor >= 0),
    currency               TEXT NOT NULL,
    active                 BOOLEAN NOT NULL DEFAULT 1,
    default_priority       TEXT NOT NULL CHECK (default_priority IN ('low', 'normal', 'high', 'urgent')),
    required_data_template TEXT NOT NULL,
    version                BIGINT NOT NULL DEFAULT 1,
    created_at             TIMESTAMP NOT NULL,
    updated_at             TIMESTAMP NOT NULL
) WITHOUT ROWID;
INSERT INTO services_rebuilt SELECT * FROM services;
DROP TABLE services;
ALTER TABLE services_rebuilt RENAME TO services;
CREATE INDEX services_agency_idx ON services (agency_id, id);
CREATE INDEX services_active_idx ON services (active, id);

CREATE TABLE cases_rebuilt (
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
    disputed        BOOLEAN NOT NULL DEFAULT 0,
    resolution_type TEXT,
    resolution      TEXT,
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    closed_at       TIMESTAMP
) WITHOUT ROWID;
INSERT INTO cases_rebuilt SELECT * FROM cases;
DROP TABLE cases;
ALTER TABLE cases_rebuilt RENAME TO cases;
CREATE UNIQUE INDEX cases_number_key ON cases (number);
CREATE INDEX cases_agency_idx ON cases (agency_id, id);
CREATE INDEX cases_agency_status_idx ON cases (agency_id, status, id);
CREATE INDEX cases_client_idx ON cases (client_id, id);
CREATE INDEX cases_status_idx ON cases (status, id);
CREATE INDEX cases_assignee_idx ON cases (assignee_id, id);
CREATE INDEX cases_service_idx ON cases (service_id, id);
CREATE INDEX cases_priority_idx ON cases (priority, id);
CREATE INDEX cases_created_idx ON cases (created_at, id);
CREATE INDEX cases_client_status_idx ON cases (client_id, status, agency_id);

CREATE TABLE case_agents_rebuilt (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    user_id     TEXT NOT NULL REFERENCES users (id),
    assigned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (case_id, user_id)
) WITHOUT ROWID;
INSERT INTO case_agents_rebuilt SELECT * FROM case_agents;
DROP TABLE case_agents;
ALTER TABLE case_agents_rebuilt RENAME TO case_agents;
CREATE INDEX case_agents_user_idx ON case_agents (user_id, case_id);

CREATE TABLE message_reads_rebuilt (
    case_id      TEXT NOT NULL REFERENCES cases (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    last_read_id TEXT NOT NULL,
    read_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (case_id, user_id)
) WITHOUT ROWID;
INSERT INTO message_reads_rebuilt SELECT * FROM message_reads;
DROP TABLE message_reads;
ALTER TABLE message_reads_rebuilt RENAME TO message_reads;
CREATE INDEX message_reads_user_idx ON message_reads (user_id, case_id);

CREATE TABLE client_open_cases_rebuilt (
    client_id  TEXT NOT NULL REFERENCES users (id),
    agency_id  TEXT NOT NULL REFERENCES agencies (id),
    open_cases BIGINT NOT NULL CHECK (open_cases >= 0),
    PRIMARY KEY (client_id, agency_id)
) WITHOUT ROWID;
INSERT INTO client_open_cases_rebuilt SELECT * FROM client_open_cases;
DROP TABLE client_open_cases;
ALTER TABLE client_open_cases_rebuilt RENAME TO client_open_cases;
-- Dropping a table dropped its planner statistics (sqlite_stat1): gather them again (an empty
-- table gets none).
ANALYZE agencies;
ANALYZE users;
ANALYZE services;
ANALYZE cases;
ANALYZE case_agents;
ANALYZE message_reads;
ANALYZE client_open_cases;
COMMIT;
PRAGMA foreign_keys = ON;
