-- Dropping the table drops the files' rows, not their blobs in storage.
DROP TABLE ticket_attachments;
ALTER TABLE ticket_messages DROP COLUMN attachment_ids;
