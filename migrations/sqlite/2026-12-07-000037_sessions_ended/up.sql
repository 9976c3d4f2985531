-- When every session of the user ended (logged out everywhere, a password change, a
-- deactivation): access tokens issued until then are refused, not only refresh tokens.
ALTER TABLE users ADD COLUMN sessions_ended_at TIMESTAMP;
