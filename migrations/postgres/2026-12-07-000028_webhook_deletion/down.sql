-- Deleted webhooks would come back to life without the column that hides them.
DROP INDEX webhooks_platform_url_idx;
DROP INDEX webhooks_agency_url_idx;
DELETE FROM webhook_deliveries WHERE webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NOT NULL);
DELETE FROM webhooks WHERE deleted_at IS NOT NULL;
ALTER TABLE webhooks DROP COLUMN deleted_at;
ALTER TABLE webhooks DROP COLUMN version;
