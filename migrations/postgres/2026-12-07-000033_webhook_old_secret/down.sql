DROP INDEX webhooks_old_secret_idx;
ALTER TABLE webhooks DROP COLUMN old_secret_expires_at;
ALTER TABLE webhooks DROP COLUMN old_secret;
