-- A rotation may keep the replaced secret signing beside the new one for a while
-- (`keep_old_secret_hours`), so a receiver can switch keys without missing a delivery.
ALTER TABLE webhooks ADD COLUMN old_secret TEXT;
ALTER TABLE webhooks ADD COLUMN old_secret_expires_at TIMESTAMP;
-- The hourly sweep forgets the old secrets that expired: a walk of the few that are kept.
CREATE INDEX webhooks_old_secret_idx ON webhooks (old_secret_expires_at)
    WHERE old_secret_expires_at IS NOT NULL;
