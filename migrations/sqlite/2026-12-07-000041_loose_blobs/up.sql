-- Blobs that may be in storage with no row owning them: an upload still streaming in (due when
-- it can no longer be one), or a deleted file's bytes (due at once). The upload's or the
-- deletion's own write settles each; housekeeping removes what a dropped request left.
CREATE TABLE loose_blobs (
    storage_key TEXT PRIMARY KEY NOT NULL,
    due_at TIMESTAMP NOT NULL
);
CREATE INDEX loose_blobs_due_idx ON loose_blobs (due_at);
