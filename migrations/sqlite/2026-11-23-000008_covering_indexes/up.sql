-- Unread counts (card and list) filter on the sender's role; with it in the index they are
-- answered from the index alone instead of a table lookup per message (bench/RESULTS.md).
DROP INDEX messages_case_public_idx;
CREATE INDEX messages_case_public_idx ON messages (case_id, internal, id, sender_role);
