-- Files agents uploaded before migration 12 stayed visible to the client: an agent's files
-- are internal until something the client sees carries them (a published storyline event, a
-- message that is not an internal note), as the server now keeps them. Ids are stored quoted
-- in JSON arrays. Staff files of that time stay as they were: visible.
UPDATE attachments SET internal = TRUE
WHERE internal = FALSE
  AND uploader_id IN (SELECT id FROM users WHERE role = 'agent')
  AND NOT EXISTS (
    SELECT 1 FROM storyline_events e
    WHERE e.case_id = attachments.case_id AND e.status = 'published'
      AND e.attachment_ids LIKE '%"' || attachments.id || '"%')
  AND NOT EXISTS (
    SELECT 1 FROM messages m
    WHERE m.case_id = attachments.case_id AND m.internal = FALSE
      AND m.attachment_ids LIKE '%"' || attachments.id || '"%');
