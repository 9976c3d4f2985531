-- The hourly sweep forgets refresh tokens long expired: a range of this index, not a walk of
-- every session ever opened (one row per login and per refresh, rows were never removed).
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
