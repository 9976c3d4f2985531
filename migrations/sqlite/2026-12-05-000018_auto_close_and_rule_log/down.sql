DELETE FROM notifications WHERE event = 'survey_requested';
DELETE FROM email_preferences WHERE event = 'survey_requested';
CREATE TABLE notifications_rebuilt (
    id         TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    case_id    TEXT REFERENCES cases (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned')),
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
                   'request_answered', 'video_call_opened', 'assigned')),
    enabled    BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, event)
);
INSERT INTO email_preferences_rebuilt SELECT * FROM email_preferences;
DROP TABLE email_preferences;
ALTER TABLE email_preferences_rebuilt RENAME TO email_preferences;

DROP TABLE awaiting_confirmation;
DROP TABLE rule_log;
