-- Tickets have SLA clocks too (DESIGN.md "SLA": first_response and resolution), under the
-- platform's default policy for the ticket's priority. Their clocks are a case's clocks' shape,
-- keyed by the ticket.
CREATE TABLE ticket_sla_clocks (
    ticket_id     TEXT NOT NULL REFERENCES tickets (id),
    clock         TEXT NOT NULL CHECK (clock IN ('first_response', 'resolution')),
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
    PRIMARY KEY (ticket_id, clock)
) WITHOUT ROWID;

-- The ticket's SLA at a glance, as the case's (migration 22).
ALTER TABLE tickets ADD COLUMN sla_state TEXT CHECK (sla_state IN ('on_track', 'at_risk', 'breached', 'met'));
ALTER TABLE tickets ADD COLUMN sla_due_at TIMESTAMP;
ALTER TABLE tickets ADD COLUMN sla_next_at TIMESTAMP;
CREATE INDEX tickets_sla_state_idx ON tickets (sla_state, id);
CREATE INDEX tickets_sla_next_idx ON tickets (sla_next_at);
