-- A webhook's deliveries in one state, newest first (`GET …/deliveries?status=dead`).
CREATE INDEX webhook_deliveries_webhook_status_idx ON webhook_deliveries (webhook_id, status, id);
