ALTER TABLE cases DROP COLUMN sla_policy_id;
