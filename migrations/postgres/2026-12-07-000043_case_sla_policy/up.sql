-- The SLA policy a case was bought under (its service's at that moment): a bank transfer's
-- clocks start when it is paid, and a policy the service names meanwhile is not the one the
-- client bought. Of the cases bought before this migration, only those that may still start
-- clocks read it (a case with clocks follows theirs): they take their service's present one.
ALTER TABLE cases ADD COLUMN sla_policy_id TEXT REFERENCES sla_policies (id);
UPDATE cases SET sla_policy_id = (
    SELECT services.sla_policy_id FROM services WHERE services.id = cases.service_id
) WHERE service_id IN (SELECT id FROM services WHERE sla_policy_id IS NOT NULL)
    AND status NOT IN ('rejected', 'cancelled', 'closed')
    AND NOT EXISTS (SELECT 1 FROM sla_clocks WHERE sla_clocks.case_id = cases.id);
