-- The users a case message mentions (DESIGN.md's built-in rule "notify on mention"), a JSON
-- array of ids like `attachment_ids`: read with the message, never searched.
ALTER TABLE messages ADD COLUMN mention_ids TEXT NOT NULL DEFAULT '[]';

-- `mentioned` reaches the bell and e-mail.
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened', 'sla_warning',
    'sla_breached', 'case_created', 'mentioned'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened', 'sla_warning',
    'sla_breached', 'case_created', 'mentioned'));
