DROP INDEX cases_client_status_idx;
DROP INDEX messages_case_public_idx;
CREATE INDEX messages_case_public_idx ON messages (case_id, internal, id);
