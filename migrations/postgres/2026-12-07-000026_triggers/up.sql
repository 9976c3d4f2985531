-- Agencies' own rules (DESIGN.md "Audit log and business-rule log"): on an event on one of its
-- cases, when the case meets every condition, a trigger takes its actions (notify, set the
-- priority, assign, add a tag, send to a webhook), in the event's transaction.
CREATE TABLE triggers (
    id         TEXT PRIMARY KEY NOT NULL,
    agency_id  TEXT NOT NULL REFERENCES agencies (id),
    name       TEXT NOT NULL,
    -- A notification event on cases.
    event      TEXT NOT NULL,
    -- JSON arrays of conditions and of actions.
    conditions TEXT NOT NULL,
    actions    TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    version    BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- Every event on a case looks up its agency's active triggers for that event; the list pages
-- an agency's by id.
CREATE INDEX triggers_agency_event_idx ON triggers (agency_id, event, id);
CREATE INDEX triggers_agency_idx ON triggers (agency_id, id);

-- A case's labels, set by its agency's staff and by triggers: a JSON array of strings.
ALTER TABLE cases ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- `case_created` reaches the bell (a trigger's `notify`) and e-mail.
ALTER TABLE notifications DROP CONSTRAINT notifications_event_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened', 'sla_warning',
    'sla_breached', 'case_created'));
ALTER TABLE email_preferences DROP CONSTRAINT email_preferences_event_check;
ALTER TABLE email_preferences ADD CONSTRAINT email_preferences_event_check CHECK (event IN (
    'status_changed', 'message_received', 'request_opened', 'request_answered',
    'video_call_opened', 'assigned', 'survey_requested', 'ticket_opened', 'sla_warning',
    'sla_breached', 'case_created'));
