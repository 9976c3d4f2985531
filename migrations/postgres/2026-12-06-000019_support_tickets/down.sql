DELETE FROM notifications WHERE event = 'ticket_opened' OR ticket_id IS NOT NULL;
DELETE FROM email_preferences WHERE event = 'ticket_opened';
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested'));
ALTER TABLE notifications DROP COLUMN ticket_id;
DELETE FROM rule_log WHERE ticket_id IS NOT NULL;
ALTER TABLE rule_log DROP COLUMN ticket_id;
DROP TABLE ticket_messages;
DROP TABLE tickets;
