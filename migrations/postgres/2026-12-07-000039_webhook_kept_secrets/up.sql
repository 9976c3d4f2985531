-- The hourly sweep now forgets only the expired old secret and leaves its past time shown: the
-- rows it looks for are those still holding a secret.
DROP INDEX webhooks_old_secret_idx;
CREATE INDEX webhooks_old_secret_idx ON webhooks (old_secret_expires_at)
    WHERE old_secret IS NOT NULL;
