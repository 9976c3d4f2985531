ALTER TABLE webhooks DROP COLUMN deleted_at;
ALTER TABLE webhooks DROP COLUMN version;
