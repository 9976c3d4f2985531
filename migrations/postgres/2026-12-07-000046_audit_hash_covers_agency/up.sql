-- Which rule each audit row was hashed by. Rows from before this migration, and rows a node of
-- the previous version writes during a rolling deploy, keep rule 1 (the default); rule 2 also
-- covers `agency_id`, which decides whose admins read the row.
ALTER TABLE audit_log ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
