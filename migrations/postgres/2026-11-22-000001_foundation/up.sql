CREATE TABLE agencies (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    contact_email TEXT,
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX agencies_name_key ON agencies (name);

CREATE TABLE users (
    id                 TEXT PRIMARY KEY NOT NULL,
    email              TEXT NOT NULL,
    name               TEXT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('platform', 'agency', 'agent', 'client')),
    agency_id          TEXT REFERENCES agencies (id),
    is_admin           BOOLEAN NOT NULL DEFAULT FALSE,
    locale             TEXT NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'it', 'es', 'pl')),
    active             BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash      TEXT NOT NULL,
    id_document_type   TEXT,
    id_document_number TEXT,
    account_number     TEXT,
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL,
    CHECK ((role IN ('agency', 'agent')) = (agency_id IS NOT NULL))
);
-- E-mails are stored lower-cased, so this index makes them unique case-insensitively.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_agency_id_idx ON users (agency_id, id);
CREATE INDEX users_role_idx ON users (role, id);

CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY NOT NULL,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    revoked_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
