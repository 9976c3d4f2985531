DROP INDEX cases_agency_priority_idx;
DROP INDEX cases_agency_sla_state_idx;
DROP INDEX cases_agency_assignee_idx;
