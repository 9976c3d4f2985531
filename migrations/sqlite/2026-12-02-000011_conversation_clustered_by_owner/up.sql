-- Messages are only ever read by case, and notifications by user: each table is now ordered by
-- that key and its id (its primary key), and the index that duplicated that order is gone.
-- A posted message wrote two b-trees for the message and two for the notification that only
-- kept the id's uniqueness and the row's place; ids are UUIDv7s made by the server, unique
-- without an index of their own (bench/RESULTS.md, eleventh session). Nothing references
-- either table, so they are rebuilt with foreign keys on (SQLite's procedure for changing a
-- table: https://sqlite.org/lang_altertable.html#otheralter).
CREATE TABLE messages_rebuilt (
    id             TEXT NOT NULL,
    case_id        TEXT NOT NULL REFERENCES cases (id),
    sender_id      TEXT NOT NULL REFERENCES users (id),
    sender_role    TEXT NOT NULL CHECK (sender_role IN ('platform', 'agency', 'agent', 'client')),
    direction      TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound', 'internal')),
    channel        TEXT NOT NULL CHECK (channel IN ('in_app', 'email', 'phone', 'whatsapp', 'video')),
    internal       BOOLEAN NOT NULL,
    body           TEXT NOT NULL,
    attachment_ids TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    CHECK (internal = (direction = 'internal')),
    PRIMARY KEY (case_id, id)
) WITHOUT ROWID;
INSERT INTO messages_rebuilt SELECT * FROM messages;
DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;
CREATE INDEX messages_case_public_idx ON messages (case_id, internal, id, sender_role);

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

ANALYZE messages;
ANALYZE notifications;
