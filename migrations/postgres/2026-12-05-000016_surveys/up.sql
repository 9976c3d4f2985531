-- Surveys: the client's rating (1 to 5) and comment, given with `confirm_completion` or once
-- the case is closed; the card shows the newest.
CREATE TABLE surveys (
    id         TEXT PRIMARY KEY NOT NULL,
    case_id    TEXT NOT NULL REFERENCES cases (id),
    client_id  TEXT NOT NULL REFERENCES users (id),
    rating     INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment    TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX surveys_case_idx ON surveys (case_id, id);
