-- A room's link stops working for good when its case leaves the statuses with calls (completed,
-- rejected, cancelled); a reopened case opens new rooms.
ALTER TABLE video_calls ADD COLUMN ended_at TIMESTAMP;
-- Rooms already past that moment ended at it, as the audit trail dates it: the first
-- completion, rejection or cancellation of their case after they opened (a reopened case's
-- earlier rooms too).
UPDATE video_calls
SET ended_at = (
    SELECT MIN(audit_log.created_at) FROM audit_log
    WHERE audit_log.case_id = video_calls.case_id
        AND audit_log.entity = 'case'
        AND audit_log.action IN ('complete', 'reject', 'cancel')
        AND audit_log.created_at >= video_calls.created_at
);
-- A case out of those statuses with no such row (written outside the API) ended them with its
-- last change.
UPDATE video_calls
SET ended_at = (SELECT cases.updated_at FROM cases WHERE cases.id = video_calls.case_id)
WHERE ended_at IS NULL AND case_id IN (
    SELECT id FROM cases
    WHERE status NOT IN ('in_approval', 'approved', 'in_progress', 'suspended')
);
