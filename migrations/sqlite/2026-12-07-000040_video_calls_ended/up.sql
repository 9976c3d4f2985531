-- A room's link stops working for good when its case leaves the statuses with calls (completed,
-- rejected, cancelled); a reopened case opens new rooms. Rooms of cases already out of those
-- statuses ended with the case's last change.
ALTER TABLE video_calls ADD COLUMN ended_at TIMESTAMP;
UPDATE video_calls
SET ended_at = (SELECT cases.updated_at FROM cases WHERE cases.id = video_calls.case_id)
WHERE case_id IN (
    SELECT id FROM cases
    WHERE status NOT IN ('in_approval', 'approved', 'in_progress', 'suspended')
);
