DELETE FROM sqlite_stat1 WHERE tbl = 'case_tags';
CREATE TABLE case_tags_old (
    tag     TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    PRIMARY KEY (tag, case_id)
) WITHOUT ROWID;
INSERT INTO case_tags_old (tag, case_id) SELECT tag, case_id FROM case_tags;
DROP TABLE case_tags;
ALTER TABLE case_tags_old RENAME TO case_tags;
INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('case_tags', 'case_tags', '10000 5000 1');
ANALYZE sqlite_schema;
