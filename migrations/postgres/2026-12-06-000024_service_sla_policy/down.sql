ALTER TABLE services DROP COLUMN sla_policy_id;
