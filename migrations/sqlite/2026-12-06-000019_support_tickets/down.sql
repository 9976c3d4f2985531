DELETE FROM notifications WHERE event = 'ticket_opened' OR ticket_id IS NOT NULL;
DELETE FROM email_preferences WHERE event = 'ticket_opened';
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
INSERT INTO notifications_rebuilt
SELECT id, user_id, case_id, event, title, body, created_at, read_at FROM notifications;
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

DROP INDEX rule_log_ticket_idx;
DELETE FROM rule_log WHERE ticket_id IS NOT NULL;
ALTER TABLE rule_log DROP COLUMN ticket_id;
DROP TABLE ticket_messages;
DROP TABLE tickets;
