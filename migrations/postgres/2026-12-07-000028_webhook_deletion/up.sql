-- A webhook's version (its `ETag`, checked by `If-Match`) and when it was deleted: a deleted
-- webhook is kept, hidden and inactive, until the hourly sweep removes it with its deliveries,
-- so that a delivery written by a request that read it before the deletion keeps its foreign
-- key.
ALTER TABLE webhooks ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE webhooks ADD COLUMN deleted_at TIMESTAMP;
-- One live webhook per owner and URL, now held by the database (two requests at once could
-- both pass the API's check); a repeat that such a race left before is deleted, the oldest kept.
UPDATE webhooks SET deleted_at = (CURRENT_TIMESTAMP AT TIME ZONE 'UTC'), active = FALSE
WHERE EXISTS (
    SELECT 1 FROM webhooks AS older
    WHERE COALESCE(older.agency_id, '') = COALESCE(webhooks.agency_id, '')
      AND older.url = webhooks.url AND older.id < webhooks.id
);
CREATE UNIQUE INDEX webhooks_agency_url_idx ON webhooks (agency_id, url) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX webhooks_platform_url_idx ON webhooks (url)
WHERE deleted_at IS NULL AND agency_id IS NULL;
