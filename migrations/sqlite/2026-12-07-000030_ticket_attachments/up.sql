-- Files on a support ticket, seen by both its sides; keyed by their ticket, as its messages
-- are: the ticket's list and every lookup (the path names both) are one range of the key.
CREATE TABLE ticket_attachments (
    ticket_id    TEXT NOT NULL REFERENCES tickets (id),
    id           TEXT NOT NULL,
    uploader_id  TEXT NOT NULL REFERENCES users (id),
    file_name    TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (ticket_id, id)
) WITHOUT ROWID;

-- The files a ticket message carries, a JSON array of ids (as a case message's).
ALTER TABLE ticket_messages ADD COLUMN attachment_ids TEXT NOT NULL DEFAULT '[]';
