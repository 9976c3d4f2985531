-- The conversation of a case: client ↔ agency messages, logged interactions on other channels,
-- and internal notes between the agency and its agents (never shown to the client).
CREATE TABLE messages (
    id             TEXT PRIMARY KEY NOT NULL,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    sender_id      TEXT NOT NULL REFERENCES users (id),
    sender_role    TEXT NOT NULL CHECK (sender_role IN ('platform', 'agency', 'agent', 'client')),
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    channel        TEXT NOT NULL CHECK (channel IN ('in_app', 'email', 'phone', 'whatsapp', 'video')),
    internal       BOOLEAN NOT NULL,
    body           TEXT NOT NULL,
    attachment_ids TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    CHECK (internal = (direction = 'internal'))
);
CREATE INDEX messages_case_idx ON messages (case_id, id);
CREATE INDEX messages_case_public_idx ON messages (case_id, internal, id);

-- How far each user has read each case's conversation (ids are time-ordered).
CREATE TABLE message_reads (
    case_id      TEXT NOT NULL REFERENCES cases (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    last_read_id TEXT NOT NULL,
    read_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (case_id, user_id)
);
CREATE INDEX message_reads_user_idx ON message_reads (user_id, case_id);
