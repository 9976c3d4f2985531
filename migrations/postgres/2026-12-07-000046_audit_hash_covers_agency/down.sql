-- Rows hashed by rule 2 no longer verify after this: their rule is forgotten.
SET LOCAL lock_timeout = '5s';
ALTER TABLE audit_log DROP COLUMN hash_version;
