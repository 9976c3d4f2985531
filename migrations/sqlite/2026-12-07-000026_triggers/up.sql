-- Agencies' own rules (DESIGN.md "Audit log and business-rule log"): on an event on one of its
-- cases, when the case meets every condition, a trigger takes its actions (notify, set the
-- priority, assign, add a tag, send to a webhook), in the event's transaction.
CREATE TABLE triggers (
    id         TEXT PRIMARY KEY NOT NULL,
    agency_id  TEXT NOT NULL REFERENCES agencies (id),
    name       TEXT NOT NULL,
    -- A notification event on cases.
    event      TEXT NOT NULL,
    -- JSON arrays of conditions and of actions.
    conditions TEXT NOT NULL,
    actions    TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    version    BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- Every event on a case looks up its agency's active triggers for that event; the list pages
-- an agency's by id.
CREATE INDEX triggers_agency_event_idx ON triggers (agency_id, event, id);
CREATE INDEX triggers_agency_idx ON triggers (agency_id, id);

-- A case's labels, set by its agency's staff and by triggers: a JSON array of strings.
ALTER TABLE cases ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- `case_created` reaches the bell (a trigger's `notify`) and e-mail. SQLite cannot change a
-- CHECK constraint: both tables are rebuilt.
CREATE TABLE notifications_rebuilt (
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    case_id    TEXT REFERENCES cases (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned', 'survey_requested',
                   'ticket_opened', 'sla_warning', 'sla_breached', 'case_created')),
    title      TEXT NOT NULL,
    body       TEXT,
    created_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP,
    ticket_id  TEXT REFERENCES tickets (id),
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
INSERT INTO notifications_rebuilt (id, user_id, case_id, event, title, body, created_at, read_at, ticket_id)
SELECT id, user_id, case_id, event, title, body, created_at, read_at, ticket_id FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_rebuilt RENAME TO notifications;
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, read_at, id);

CREATE TABLE email_preferences_rebuilt (
    user_id    TEXT NOT NULL REFERENCES users (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned', 'survey_requested',
                   'ticket_opened', 'sla_warning', 'sla_breached', 'case_created')),
    enabled    BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, event)
);
INSERT INTO email_preferences_rebuilt SELECT * FROM email_preferences;
DROP TABLE email_preferences;
ALTER TABLE email_preferences_rebuilt RENAME TO email_preferences;

ANALYZE notifications;
ANALYZE email_preferences;
