DROP INDEX webhooks_old_secret_idx;
CREATE INDEX webhooks_old_secret_idx ON webhooks (old_secret_expires_at)
    WHERE old_secret_expires_at IS NOT NULL;
