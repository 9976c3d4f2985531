-- `GET /v1/audit`: agency admins read their agency's rows (its cases' and its services'), and
-- everyone filters by actor and action, each a keyset walk of its own index. `agency_id` only
-- decides who reads a row: it is not part of the row's hash.
ALTER TABLE audit_log ADD COLUMN agency_id TEXT;
UPDATE audit_log SET agency_id = (SELECT cases.agency_id FROM cases WHERE cases.id = audit_log.case_id)
WHERE case_id IS NOT NULL;
UPDATE audit_log SET agency_id = (SELECT services.agency_id FROM services WHERE services.id = audit_log.entity_id)
WHERE case_id IS NULL AND entity = 'service';
CREATE INDEX audit_log_agency_idx ON audit_log (agency_id, seq);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, seq);
CREATE INDEX audit_log_action_idx ON audit_log (action, seq);
