-- Rows hashed by rule 2 no longer verify after this: their rule is forgotten.
ALTER TABLE audit_log DROP COLUMN hash_version;
