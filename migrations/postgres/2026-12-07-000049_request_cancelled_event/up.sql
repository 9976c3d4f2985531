-- `request_cancelled`: the client told that the agency withdrew what it asked them.
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'request_cancelled', 'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened',
    'sla_warning', 'sla_breached', 'case_created', 'mentioned'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'request_cancelled', 'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened',
    'sla_warning', 'sla_breached', 'case_created', 'mentioned'));
