DELETE FROM sqlite_stat1
WHERE idx IN ('cases_agency_assignee_idx', 'cases_agency_sla_state_idx', 'cases_agency_priority_idx');
DROP INDEX cases_agency_priority_idx;
DROP INDEX cases_agency_sla_state_idx;
DROP INDEX cases_agency_assignee_idx;
