DROP TRIGGER case_tags_fill_agency ON case_tags;
DROP FUNCTION case_tags_fill_agency();
DROP INDEX case_tags_agency_idx;
ALTER TABLE case_tags DROP COLUMN agency_id;
