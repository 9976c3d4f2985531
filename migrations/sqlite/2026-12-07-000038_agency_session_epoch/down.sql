ALTER TABLE agencies DROP COLUMN session_epoch;
