-- `GET /v1/tickets/{id}/audit` and `GET /v1/audit?entity_id=`: one thing's rows (a ticket's
-- are all keyed by the ticket's id), a keyset walk of this index.
CREATE INDEX audit_log_entity_idx ON audit_log (entity_id, seq);
