-- Human ticket numbers (`TKT-2026-000045`), counted per year across the platform as case
-- numbers are.
CREATE TABLE ticket_counters (
    year INTEGER PRIMARY KEY NOT NULL,
    last BIGINT NOT NULL
);

-- SQLite adds a NOT NULL column only with a default; every row gets its number below, and the
-- server always writes one (an INSERT without it would fail on the unique index from its
-- second row, where PostgreSQL, which has no default, fails at once).
ALTER TABLE tickets ADD COLUMN number TEXT NOT NULL DEFAULT '';

-- Tickets already there are numbered in the order they were opened, per year.
UPDATE tickets SET number = numbered.number
FROM (
    SELECT id, 'TKT-' || strftime('%Y', created_at) || '-' ||
           printf('%06d', ROW_NUMBER() OVER (PARTITION BY strftime('%Y', created_at)
                                             ORDER BY created_at, id)) AS number
    FROM tickets
) AS numbered
WHERE numbered.id = tickets.id;

INSERT INTO ticket_counters (year, last)
SELECT CAST(strftime('%Y', created_at) AS INTEGER), COUNT(*) FROM tickets
GROUP BY strftime('%Y', created_at);

CREATE UNIQUE INDEX tickets_number_idx ON tickets (number);
