-- Files the client does not see: an agent's, or agency staff's sent as `internal`, until
-- something the client sees (a message to them, a published storyline event) carries them.
ALTER TABLE attachments ADD COLUMN internal BOOLEAN NOT NULL DEFAULT FALSE;
