-- A case's tags with its agency: an agency's `tag` filter seeks its own range of the agency's
-- tagged cases, where the tag's range held every agency's cases with that label (a label
-- several agencies use read them all).
ALTER TABLE case_tags ADD COLUMN agency_id TEXT REFERENCES agencies (id);
UPDATE case_tags SET agency_id = cases.agency_id FROM cases WHERE cases.id = case_tags.case_id;
ALTER TABLE case_tags ALTER COLUMN agency_id SET NOT NULL;
CREATE INDEX case_tags_agency_idx ON case_tags (agency_id, tag, case_id);
