-- Back to rowid tables keyed by id, with the (case, id) and (user, id) indexes.
CREATE TABLE messages_rebuilt (
    id             TEXT PRIMARY KEY NOT NULL,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    sender_id      TEXT NOT NULL REFERENCES users (id),
    sender_role    TEXT NOT NULL CHECK (sender_role IN ('platform', 'agency', 'agent', 'client')),
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    channel        TEXT NOT NULL CHECK (channel IN ('in_app', 'email', 'phone', 'whatsapp', 'video')),
    internal       BOOLEAN NOT NULL,
    body           TEXT NOT NULL,
    attachment_ids TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    CHECK (internal = (direction = 'internal'))
);
INSERT INTO messages_rebuilt SELECT * FROM messages;
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;
CREATE INDEX messages_case_idx ON messages (case_id, id);
CREATE INDEX messages_case_public_idx ON messages (case_id, internal, id, sender_role);

CREATE TABLE notifications_rebuilt (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id),
    case_id    TEXT REFERENCES cases (id),
    event      TEXT NOT NULL CHECK (event IN ('status_changed', 'message_received', 'request_opened',
                   'request_answered', 'video_call_opened', 'assigned')),
    title      TEXT NOT NULL,
    body       TEXT,
    created_at TIMESTAMP NOT NULL,
    read_at    TIMESTAMP
);
INSERT INTO notifications_rebuilt SELECT * FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_rebuilt RENAME TO notifications;
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
CREATE INDEX notifications_user_unread_idx ON notifications (user_id, read_at, id);

ANALYZE messages;
ANALYZE notifications;
