-- A case's tags, one row each, for the case list's `tag` filter (the card reads `cases.tags`).
CREATE TABLE case_tags (
    tag     TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    PRIMARY KEY (tag, case_id)
) WITHOUT ROWID;
INSERT INTO case_tags (tag, case_id)
SELECT tags.value, cases.id FROM cases, json_each(cases.tags) AS tags WHERE cases.tags <> '[]';
