ALTER TABLE video_calls DROP COLUMN ended_at;
