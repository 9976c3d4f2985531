-- A service may name the SLA policy its cases follow (API.md), ahead of the agency's default.
ALTER TABLE services ADD COLUMN sla_policy_id TEXT REFERENCES sla_policies (id);
