-- A leap second a caller sent (`…:59:60.5`) was kept as SQLite text with second 60, which most
-- clients cannot read and the storyline's cursor never matches. It is the instant after it, as
-- the server now stores it and PostgreSQL always did: second 59 plus one, fraction kept.
UPDATE storyline_events
SET occurred_at = datetime(substr(occurred_at, 1, 16) || ':59', '+1 second') || substr(occurred_at, 20)
WHERE substr(occurred_at, 18, 2) = '60';
UPDATE client_requests
SET due_at = datetime(substr(due_at, 1, 16) || ':59', '+1 second') || substr(due_at, 20)
WHERE substr(due_at, 18, 2) = '60';
