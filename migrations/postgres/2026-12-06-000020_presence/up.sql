-- Presence (DESIGN.md "Presence and capacity"): each staff member's status and the case they
-- are working on (none: waiting). A user without a row is offline.
CREATE TABLE presence (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    status     TEXT NOT NULL CHECK (status IN ('available', 'busy', 'do_not_disturb', 'away',
                   'offline')),
    working_on TEXT REFERENCES cases (id),
    updated_at TIMESTAMP NOT NULL
);

-- Workload: each operator's open cases and tickets, counted without reading the closed ones.
CREATE INDEX cases_assignee_status_idx ON cases (assignee_id, status);
CREATE INDEX tickets_assignee_status_idx ON tickets (assignee_id, status);
