ALTER TABLE presence DROP COLUMN last_assigned_at;
