-- Automatic assignment serves operators with equal room in turn: when the rule last gave each
-- one a case (never: first).
ALTER TABLE presence ADD COLUMN last_assigned_at TIMESTAMP;
