-- Which rule each audit row was hashed by. Rows from before this migration, and rows a node of
-- the previous version writes during a rolling deploy, keep rule 1 (the default); rule 2 also
-- covers `agency_id`, which decides whose admins read the row.
-- Adding the column takes the table's strongest lock for an instant; queued behind a long
-- reader (an audit verify or export), it would hold up every write's audit rows behind it.
-- So it waits 5 s at most: past that this node's start fails, and a restart tries again.
SET LOCAL lock_timeout = '5s';
ALTER TABLE audit_log ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
