DROP TABLE storyline_events;
