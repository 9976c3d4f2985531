-- Webhooks forget the event, and its deliveries still pending end.
UPDATE webhooks SET events = REPLACE(REPLACE(REPLACE(events, '"case_created",', ''), ',"case_created"', ''), '"case_created"', '')
WHERE events LIKE '%case_created%';
-- One that heard of nothing else is paused: the API never leaves a webhook without events.
UPDATE webhooks SET active = FALSE WHERE events = '[]';
UPDATE webhook_deliveries SET status = 'dead', last_error = 'case_created is gone'
WHERE event = 'case_created' AND status = 'pending';
DELETE FROM notifications WHERE event = 'case_created';
DELETE FROM email_preferences WHERE event = 'case_created';
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened', 'sla_warning',
    'sla_breached'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened', 'sla_warning',
    'sla_breached'));
ALTER TABLE cases DROP COLUMN tags;
DROP TABLE triggers;
