-- A webhook's version (its `ETag`, checked by `If-Match`) and when it was deleted: a deleted
-- webhook is kept, hidden and inactive, until the hourly sweep has removed its deliveries, so
-- that a delivery written by a request that read it before the deletion keeps its foreign key.
ALTER TABLE webhooks ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE webhooks ADD COLUMN deleted_at TIMESTAMP;
