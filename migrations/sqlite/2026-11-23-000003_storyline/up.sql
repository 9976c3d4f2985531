-- The storyline of a case: dated events, optionally on the map, drafts until published.
CREATE TABLE storyline_events (
    id             TEXT PRIMARY KEY NOT NULL,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    occurred_at    TIMESTAMP NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('note', 'sighting', 'photo', 'document', 'status', 'system')),
    title          TEXT NOT NULL,
    body           TEXT,
    latitude       DOUBLE PRECISION,
    longitude      DOUBLE PRECISION,
    place_name     TEXT,
    attachment_ids TEXT NOT NULL,
    author_id      TEXT NOT NULL REFERENCES users (id),
    status         TEXT NOT NULL CHECK (status IN ('draft', 'published')),
    version        BIGINT NOT NULL DEFAULT 1,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    CHECK ((latitude IS NULL) = (longitude IS NULL))
);
-- Chronological reads of one case, and the client's published-only view.
CREATE INDEX storyline_case_time_idx ON storyline_events (case_id, occurred_at, id);
CREATE INDEX storyline_case_status_time_idx ON storyline_events (case_id, status, occurred_at, id);
