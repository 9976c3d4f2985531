-- SLA (DESIGN.md "SLA"): business calendars, policies with targets per priority, and each case's
-- clocks. `agency_id` NULL is the platform's own (a platform default applies to agencies without
-- one of theirs).
CREATE TABLE calendars (
    id         TEXT PRIMARY KEY NOT NULL,
    agency_id  TEXT REFERENCES agencies (id),
    name       TEXT NOT NULL,
    time_zone  TEXT NOT NULL,
    -- JSON: the weekly opening windows and the holiday dates, as the API takes them.
    hours      TEXT NOT NULL,
    holidays   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX calendars_agency_idx ON calendars (agency_id, id);

CREATE TABLE sla_policies (
    id              TEXT PRIMARY KEY NOT NULL,
    agency_id       TEXT REFERENCES agencies (id),
    name            TEXT NOT NULL,
    calendar_id     TEXT REFERENCES calendars (id),
    warning_percent INTEGER NOT NULL CHECK (warning_percent BETWEEN 1 AND 99),
    -- JSON: minutes per priority and clock.
    targets         TEXT NOT NULL,
    is_default      BOOLEAN NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX sla_policies_agency_idx ON sla_policies (agency_id, id);
-- One default per agency, and one for the platform.
CREATE UNIQUE INDEX sla_policies_agency_default_key ON sla_policies (agency_id)
    WHERE is_default AND agency_id IS NOT NULL;
CREATE UNIQUE INDEX sla_policies_platform_default_key ON sla_policies (is_default)
    WHERE is_default AND agency_id IS NULL;

-- A case's clocks. Business seconds counted so far are `elapsed_secs` plus, while running, the
-- business time since `running_since`; `warn_at` and `due_at` are set only while it runs.
CREATE TABLE sla_clocks (
    case_id       TEXT NOT NULL REFERENCES cases (id),
    clock         TEXT NOT NULL CHECK (clock IN ('first_response', 'decision', 'resolution')),
    policy_id     TEXT NOT NULL REFERENCES sla_policies (id),
    calendar_id   TEXT REFERENCES calendars (id),
    target_secs   BIGINT NOT NULL,
    warn_secs     BIGINT NOT NULL,
    started_at    TIMESTAMP NOT NULL,
    elapsed_secs  BIGINT NOT NULL,
    running_since TIMESTAMP,
    warn_at       TIMESTAMP,
    due_at        TIMESTAMP,
    warned_at     TIMESTAMP,
    breached_at   TIMESTAMP,
    stopped_at    TIMESTAMP,
    PRIMARY KEY (case_id, clock)
);

-- The case's SLA at a glance, kept by every write that moves a clock: its state (NULL without
-- clocks), the earliest due time of a running clock, and when the state next changes by time
-- alone (the worker's walk).
ALTER TABLE cases ADD COLUMN sla_state TEXT CHECK (sla_state IN ('on_track', 'at_risk', 'breached', 'met'));
ALTER TABLE cases ADD COLUMN sla_due_at TIMESTAMP;
ALTER TABLE cases ADD COLUMN sla_next_at TIMESTAMP;
CREATE INDEX cases_sla_state_idx ON cases (sla_state, id);
CREATE INDEX cases_sla_next_idx ON cases (sla_next_at);

-- The SLA's warnings and breaches reach the bell and e-mail.
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
