-- An agency's own views by one more column: "to assign" (`assignee=none`, and the queue the
-- automatic assignment serves), the SLA views and a priority. Each is a seek into its own range
-- of the agency's cases, where the agency's index walked its whole history for the few that
-- match (a rare value), and a platform-wide index by the value read every agency's.
CREATE INDEX cases_agency_assignee_idx ON cases (agency_id, assignee_id, id);
CREATE INDEX cases_agency_sla_state_idx ON cases (agency_id, sla_state, id);
CREATE INDEX cases_agency_priority_idx ON cases (agency_id, priority, id);
