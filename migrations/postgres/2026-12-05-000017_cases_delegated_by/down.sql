DROP INDEX cases_delegated_idx;
ALTER TABLE cases DROP COLUMN delegated_by;
