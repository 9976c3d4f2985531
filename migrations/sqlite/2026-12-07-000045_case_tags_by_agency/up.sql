-- A case's tags with its agency: an agency's `tag` filter seeks its own range of the agency's
-- tagged cases, where the tag's range held every agency's cases with that label (a label
-- several agencies use read them all). Rebuilt for the column to be NOT NULL.
CREATE TABLE case_tags_new (
    tag       TEXT NOT NULL,
    case_id   TEXT NOT NULL REFERENCES cases (id),
    agency_id TEXT NOT NULL REFERENCES agencies (id),
    PRIMARY KEY (tag, case_id)
) WITHOUT ROWID;
INSERT INTO case_tags_new (tag, case_id, agency_id)
SELECT case_tags.tag, case_tags.case_id, cases.agency_id
FROM case_tags JOIN cases ON cases.id = case_tags.case_id;
DROP TABLE case_tags;
ALTER TABLE case_tags_new RENAME TO case_tags;
CREATE INDEX case_tags_agency_idx ON case_tags (agency_id, tag, case_id);

-- Its statistics, as migration 42 fixed the others' (50 agencies sharing a few labels).
DELETE FROM sqlite_stat1 WHERE tbl = 'case_tags';
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES
    ('case_tags', 'case_tags', '10000 5000 1'),
    ('case_tags', 'case_tags_agency_idx', '10000 200 100 1');
ANALYZE sqlite_schema;
