DELETE FROM notifications WHERE event IN ('sla_warning', 'sla_breached');
DELETE FROM email_preferences WHERE event IN ('sla_warning', 'sla_breached');
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened'));
DROP INDEX cases_sla_next_idx;
DROP INDEX cases_sla_state_idx;
ALTER TABLE cases DROP COLUMN sla_next_at;
ALTER TABLE cases DROP COLUMN sla_due_at;
ALTER TABLE cases DROP COLUMN sla_state;
DROP TABLE sla_clocks;
DROP TABLE sla_policies;
DROP TABLE calendars;
