-- The "delegated" view (DESIGN.md): who handed the case to its operator, set by `delegate`
-- and cleared by `take`. Cases delegated before are found in the audit trail: their last
-- assignment was a delegation.
ALTER TABLE cases ADD COLUMN delegated_by TEXT;
UPDATE cases SET delegated_by = (
    SELECT a.actor_id FROM audit_log a
    WHERE a.case_id = cases.id AND a.action = 'delegate'
    ORDER BY a.seq DESC LIMIT 1)
WHERE assignee_id IS NOT NULL AND (
    SELECT a.action FROM audit_log a
    WHERE a.case_id = cases.id AND a.action IN ('take', 'delegate')
    ORDER BY a.seq DESC LIMIT 1) = 'delegate';
CREATE INDEX cases_delegated_idx ON cases (delegated_by, id);
