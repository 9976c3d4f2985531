-- The business-rule log (DESIGN.md): each rule that fired, with its trigger, the action taken,
-- its case and agency (whose staff read it) and the outcome. Newest first by id (UUIDv7).
CREATE TABLE rule_log (
    id            TEXT PRIMARY KEY NOT NULL,
    rule          TEXT NOT NULL,
    trigger_event TEXT NOT NULL,
    action        TEXT NOT NULL,
    case_id       TEXT REFERENCES cases (id),
    agency_id     TEXT REFERENCES agencies (id),
    outcome       TEXT NOT NULL,
    detail        TEXT,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX rule_log_case_idx ON rule_log (case_id, id);
CREATE INDEX rule_log_agency_idx ON rule_log (agency_id, id);

-- Completed cases waiting for the client's answer since `completed_at`: the auto-close rule
-- closes those waiting longer than `DOSSIER_AUTO_CLOSE_AFTER`. `complete` adds the row;
-- confirming, disputing or reopening removes it. Cases completed before this migration wait
-- from their last `complete` in the audit trail.
CREATE TABLE awaiting_confirmation (
    case_id      TEXT PRIMARY KEY NOT NULL REFERENCES cases (id),
    completed_at TIMESTAMP NOT NULL
);
CREATE INDEX awaiting_confirmation_due_idx ON awaiting_confirmation (completed_at, case_id);
INSERT INTO awaiting_confirmation (case_id, completed_at)
SELECT cases.id, COALESCE(
    (SELECT a.created_at FROM audit_log a
     WHERE a.case_id = cases.id AND a.action = 'complete'
     ORDER BY a.seq DESC LIMIT 1),
    cases.updated_at)
FROM cases WHERE cases.status = 'completed' AND NOT cases.disputed;

-- The client is asked to rate a closed case: a new event for the bell and for e-mail choices.
-- SQLite cannot change a CHECK constraint: both tables are rebuilt with the wider one.
CREATE TABLE notifications_rebuilt (
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    case_id    TEXT REFERENCES cases (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned', 'survey_requested')),
    title      TEXT NOT NULL,
    body       TEXT,
    created_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP,
    PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
INSERT INTO notifications_rebuilt SELECT * FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_rebuilt RENAME TO notifications;
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, read_at, id);

CREATE TABLE email_preferences_rebuilt (
    user_id    TEXT NOT NULL REFERENCES users (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned', 'survey_requested')),
    enabled    BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, event)
);
INSERT INTO email_preferences_rebuilt SELECT * FROM email_preferences;
DROP TABLE email_preferences;
ALTER TABLE email_preferences_rebuilt RENAME TO email_preferences;

ANALYZE notifications;
ANALYZE email_preferences;
