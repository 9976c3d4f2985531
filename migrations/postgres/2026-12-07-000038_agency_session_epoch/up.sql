-- Moves on each time an agency is deactivated: its staff's access tokens carry the sum of their
-- own epoch and this one, so those issued before stay refused after a reactivation. A column on
-- the agency, not a bump of every staff row: that locked staff rows after the agency's, the
-- reverse of a login's order.
ALTER TABLE agencies ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
