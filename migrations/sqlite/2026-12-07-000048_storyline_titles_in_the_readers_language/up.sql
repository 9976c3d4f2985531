-- The titles the system writes on the storyline (a move with its reason, the submitted required
-- data) are rendered in the reader's language from a code; `title` keeps the English text (the
-- audit trail's, and the fallback). Rows written before are recognised by their exact English
-- title, as the server wrote it: action label, colon, status code.
ALTER TABLE storyline_events ADD COLUMN title_code TEXT;
UPDATE storyline_events
SET title_code = CASE title
    WHEN 'Record failed payment: payment_failed' THEN 'fail_payment'
    WHEN 'Reject: rejected' THEN 'reject'
    WHEN 'Suspend: suspended' THEN 'suspend'
    WHEN 'Dispute completion: completed' THEN 'dispute_completion'
    WHEN 'Reopen: in_progress' THEN 'reopen'
    WHEN 'Cancel: cancelled' THEN 'cancel'
END
WHERE kind = 'status' AND title IN (
    'Record failed payment: payment_failed', 'Reject: rejected', 'Suspend: suspended',
    'Dispute completion: completed', 'Reopen: in_progress', 'Cancel: cancelled'
);
UPDATE storyline_events
SET title_code = 'required_data_submitted'
WHERE kind = 'system' AND title = 'Required data submitted';
