-- What the agency asks the client (a question, a document, notes) and the answers.
CREATE TABLE client_requests (
    id                    TEXT PRIMARY KEY NOT NULL,
    case_id               TEXT NOT NULL REFERENCES cases (id),
    kind                  TEXT NOT NULL CHECK (kind IN ('question', 'document', 'note')),
    prompt                TEXT NOT NULL,
    due_at                TIMESTAMP,
    status                TEXT NOT NULL CHECK (status IN ('open', 'answered', 'cancelled')),
    created_by            TEXT NOT NULL REFERENCES users (id),
    created_at            TIMESTAMP NOT NULL,
    answer_text           TEXT,
    answer_attachment_ids TEXT,
    answered_by           TEXT REFERENCES users (id),
    answered_at           TIMESTAMP,
    version               BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX client_requests_case_idx ON client_requests (case_id, id);
CREATE INDEX client_requests_case_status_idx ON client_requests (case_id, status, id);

-- Video call rooms; the link works while the case is in an active status.
CREATE TABLE video_calls (
    id         TEXT PRIMARY KEY NOT NULL,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    room       TEXT NOT NULL,
    url        TEXT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX video_calls_room_key ON video_calls (room);
CREATE INDEX video_calls_case_idx ON video_calls (case_id, id);
