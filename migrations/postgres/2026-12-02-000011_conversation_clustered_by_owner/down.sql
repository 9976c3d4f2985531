ALTER TABLE messages DROP CONSTRAINT messages_pkey;
ALTER TABLE messages ADD PRIMARY KEY (id);
CREATE INDEX messages_case_idx ON messages (case_id, id);

ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD PRIMARY KEY (id);
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
