-- An agency's own views by one more column: "to assign" (`assignee=none`, and the queue the
-- automatic assignment serves), the SLA views and a priority. Each is a seek into its own range
-- of the agency's cases, where the agency's index walked its whole history for the few that
-- match (a rare value), and a platform-wide index by the value read every agency's.
CREATE INDEX cases_agency_assignee_idx ON cases (agency_id, assignee_id, id);
CREATE INDEX cases_agency_sla_state_idx ON cases (agency_id, sla_state, id);
CREATE INDEX cases_agency_priority_idx ON cases (agency_id, priority, id);

-- Their statistics, as migration 42 fixed the others' (the benchmark's spread: 200 cases an
-- agency, a few operators each, three SLA states, four priorities).
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('cases', 'cases_agency_assignee_idx', '10000 200 40 1'),
    ('cases', 'cases_agency_sla_state_idx', '10000 200 67 1'),
    ('cases', 'cases_agency_priority_idx', '10000 200 50 1');
ANALYZE sqlite_schema;
