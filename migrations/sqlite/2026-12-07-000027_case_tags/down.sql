DROP TABLE case_tags;
