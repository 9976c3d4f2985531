DELETE FROM notifications WHERE event IN ('sla_warning', 'sla_breached');
DELETE FROM email_preferences WHERE event IN ('sla_warning', 'sla_breached');
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
INSERT INTO notifications_rebuilt SELECT * FROM notifications;
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

DROP INDEX cases_sla_next_idx;
DROP INDEX cases_sla_state_idx;
ALTER TABLE cases DROP COLUMN sla_next_at;
ALTER TABLE cases DROP COLUMN sla_due_at;
ALTER TABLE cases DROP COLUMN sla_state;
DROP TABLE sla_clocks;
DROP TABLE sla_policies;
DROP TABLE calendars;
