DROP INDEX tickets_number_idx;
ALTER TABLE tickets DROP COLUMN number;
DROP TABLE ticket_counters;
