DROP INDEX case_tags_agency_idx;
ALTER TABLE case_tags DROP COLUMN agency_id;
