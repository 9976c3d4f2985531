-- Support tickets (DESIGN.md): clients and agencies ask the platform for help, optionally about
-- a case they can see. An agency's tickets are its staff's together (`agency_id`); a client's
-- are theirs alone. Every list filter walks an index ending in `id` (newest first, keyset).
CREATE TABLE tickets (
    id              TEXT PRIMARY KEY NOT NULL,
    requester_id    TEXT NOT NULL REFERENCES users (id),
    agency_id       TEXT REFERENCES agencies (id),
    case_id         TEXT REFERENCES cases (id),
    subject         TEXT NOT NULL,
    description     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('new', 'open', 'waiting_on_requester',
                        'resolved', 'closed')),
    priority        TEXT NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_id     TEXT REFERENCES users (id),
    delegated_by    TEXT REFERENCES users (id),
    resolution_type TEXT,
    resolution      TEXT,
    resolved_at     TIMESTAMP,
    version         BIGINT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX tickets_requester_idx ON tickets (requester_id, id);
CREATE INDEX tickets_agency_idx ON tickets (agency_id, id);
CREATE INDEX tickets_status_idx ON tickets (status, id);
CREATE INDEX tickets_assignee_idx ON tickets (assignee_id, id);
CREATE INDEX tickets_delegated_by_idx ON tickets (delegated_by, id);
CREATE INDEX tickets_case_idx ON tickets (case_id, id);
-- The auto-close rule's walk: resolved tickets, the longest resolved first.
CREATE INDEX tickets_resolved_idx ON tickets (status, resolved_at, id);

-- A ticket's conversation between its requester's side and platform staff.
CREATE TABLE ticket_messages (
    id          TEXT NOT NULL,
    ticket_id   TEXT NOT NULL REFERENCES tickets (id),
    author_id   TEXT NOT NULL REFERENCES users (id),
    author_role TEXT NOT NULL CHECK (author_role IN ('platform', 'agency', 'client')),
    body        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (ticket_id, id)
) WITHOUT ROWID;

-- The rule log names the ticket a rule fired on (the auto-close of resolved tickets).
ALTER TABLE rule_log ADD COLUMN ticket_id TEXT REFERENCES tickets (id);
CREATE INDEX rule_log_ticket_idx ON rule_log (ticket_id, id);

-- Notifications link a ticket as they link a case; `ticket_opened` tells platform staff of a
-- new ticket. SQLite cannot change a CHECK constraint: both tables are rebuilt.
CREATE TABLE notifications_rebuilt (
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    case_id    TEXT REFERENCES cases (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned', 'survey_requested',
                   'ticket_opened')),
    title      TEXT NOT NULL,
    body       TEXT,
    created_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP,
    ticket_id  TEXT REFERENCES tickets (id),
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
INSERT INTO notifications_rebuilt (id, user_id, case_id, event, title, body, created_at, read_at)
SELECT id, user_id, case_id, event, title, body, created_at, read_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_rebuilt RENAME TO notifications;
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, read_at, id);

CREATE TABLE email_preferences_rebuilt (
    user_id    TEXT NOT NULL REFERENCES users (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned', 'survey_requested',
                   'ticket_opened')),
    enabled    BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, event)
);
INSERT INTO email_preferences_rebuilt SELECT * FROM email_preferences;
DROP TABLE email_preferences;
ALTER TABLE email_preferences_rebuilt RENAME TO email_preferences;

ANALYZE notifications;
ANALYZE email_preferences;
