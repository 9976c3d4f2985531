-- Moves on each time every session of the user ends (logged out everywhere, a password change,
-- a deactivation). Access tokens carry the value they were issued under, and one issued under
-- an older value is refused: no clock is compared.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
