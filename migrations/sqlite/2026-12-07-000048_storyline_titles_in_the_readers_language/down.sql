ALTER TABLE storyline_events DROP COLUMN title_code;
