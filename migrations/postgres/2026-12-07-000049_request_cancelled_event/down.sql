-- The bell and e-mail forget `request_cancelled`.
DELETE FROM notifications WHERE event = 'request_cancelled';
DELETE FROM email_preferences WHERE event = 'request_cancelled';
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
