DROP INDEX tickets_sla_next_idx;
DROP INDEX tickets_sla_state_idx;
ALTER TABLE tickets DROP COLUMN sla_next_at;
ALTER TABLE tickets DROP COLUMN sla_due_at;
ALTER TABLE tickets DROP COLUMN sla_state;
DROP TABLE ticket_sla_clocks;
