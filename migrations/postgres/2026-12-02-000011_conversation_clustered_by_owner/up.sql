-- Messages are only ever read by case, and notifications by user: the primary key of each is
-- now that key and the id, and the index that duplicated it is gone (one index fewer to write
-- per message and per notification; ids are UUIDv7s made by the server). The SQLite migration
-- of the same name says more.
ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (case_id, id);
DROP INDEX messages_case_idx;

ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD PRIMARY KEY (user_id, id);
DROP INDEX notifications_user_idx;
