-- Outbound webhooks (API.md): an agency's admins, or the platform's, subscribe a URL to events
-- on their cases (the platform's: every agency's). Each event becomes a delivery, written in
-- the same transaction as the event, that a worker posts, signed, and retries.
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY NOT NULL,
    agency_id  TEXT REFERENCES agencies (id),
    url        TEXT NOT NULL,
    -- The HMAC key of the signature; shown once, when the webhook is created.
    secret     TEXT NOT NULL,
    -- JSON array of notification events.
    events     TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX webhooks_agency_idx ON webhooks (agency_id, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id),
    event           TEXT NOT NULL,
    case_id         TEXT REFERENCES cases (id),
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL,
    -- When a pending delivery is due; a worker that claims it pushes it ahead (a lease).
    next_attempt_at TIMESTAMP NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at, id);
