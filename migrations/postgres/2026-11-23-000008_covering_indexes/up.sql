-- Unread counts (card and list) filter on the sender's role; with it in the index they are
-- answered from the index alone instead of a table lookup per message (bench/RESULTS.md).
DROP INDEX messages_case_public_idx;
CREATE INDEX messages_case_public_idx ON messages (case_id, internal, id, sender_role);

-- The card's count of the client's open cases (within the caller's agency) reads only this
-- index; through cases_client_idx it looked up every case of the client in the table, which
-- grows with the client's history (100 cases each at 1 000 000).
CREATE INDEX cases_client_status_idx ON cases (client_id, status, agency_id);
