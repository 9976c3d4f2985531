-- A case's tags with its agency: an agency's `tag` filter seeks its own range of the agency's
-- tagged cases, where the tag's range held every agency's cases with that label (a label
-- several agencies use read them all).
-- The foreign key comes after the backfill: one validating join, not a check per row updated.
ALTER TABLE case_tags ADD COLUMN agency_id TEXT;
UPDATE case_tags SET agency_id = cases.agency_id FROM cases WHERE cases.id = case_tags.case_id;
ALTER TABLE case_tags ALTER COLUMN agency_id SET NOT NULL;
ALTER TABLE case_tags
    ADD CONSTRAINT case_tags_agency_id_fkey FOREIGN KEY (agency_id) REFERENCES agencies (id);
CREATE INDEX case_tags_agency_idx ON case_tags (agency_id, tag, case_id);

-- A node of the previous version, during a rolling deploy, writes a tag without its agency:
-- the row takes its case's (NOT NULL is checked after this trigger).
CREATE FUNCTION case_tags_fill_agency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agency_id IS NULL THEN
        SELECT agency_id INTO NEW.agency_id FROM cases WHERE id = NEW.case_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER case_tags_fill_agency BEFORE INSERT ON case_tags
    FOR EACH ROW EXECUTE FUNCTION case_tags_fill_agency();
