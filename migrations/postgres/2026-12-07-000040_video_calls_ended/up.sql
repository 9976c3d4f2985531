-- A room's link stops working for good when its case leaves the statuses with calls (completed,
-- rejected, cancelled); a reopened case opens new rooms.
ALTER TABLE video_calls ADD COLUMN ended_at TIMESTAMP;
-- Rooms already past that moment ended at it: the first completion, rejection or cancellation
-- of their case after the room's own `create` row (a reopened case's earlier rooms too). After
-- in the audit chain's order (`seq`, given at commit), not by the nodes' clocks; dated as the
-- audit trail dates that action.
UPDATE video_calls
SET ended_at = (
    SELECT moved.created_at FROM audit_log moved
    WHERE moved.case_id = video_calls.case_id
        AND moved.entity = 'case'
        AND moved.action IN ('complete', 'reject', 'cancel')
        AND moved.seq > (
            SELECT opened.seq FROM audit_log opened
            WHERE opened.entity_id = video_calls.id
                AND opened.entity = 'video_call'
                AND opened.action = 'create'
        )
    ORDER BY moved.seq
    LIMIT 1
);
-- A case out of those statuses with no such row (written outside the API) ended them with its
-- last change.
UPDATE video_calls
SET ended_at = (SELECT cases.updated_at FROM cases WHERE cases.id = video_calls.case_id)
WHERE ended_at IS NULL AND case_id IN (
    SELECT id FROM cases
    WHERE status NOT IN ('in_approval', 'approved', 'in_progress', 'suspended')
);
