DELETE FROM notifications WHERE event = 'survey_requested';
DELETE FROM email_preferences WHERE event = 'survey_requested';
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned'));
DROP TABLE awaiting_confirmation;
DROP TABLE rule_log;
