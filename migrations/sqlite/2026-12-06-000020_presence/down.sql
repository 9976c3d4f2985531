DROP INDEX tickets_assignee_status_idx;
DROP INDEX cases_assignee_status_idx;
DROP TABLE presence;
