DROP INDEX audit_log_action_idx;
DROP INDEX audit_log_actor_idx;
DROP INDEX audit_log_agency_idx;
ALTER TABLE audit_log DROP COLUMN agency_id;
