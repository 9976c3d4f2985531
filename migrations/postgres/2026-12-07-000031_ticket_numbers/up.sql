-- Human ticket numbers (`TKT-2026-000045`), counted per year across the platform as case
-- numbers are.
CREATE TABLE ticket_counters (
    year INTEGER PRIMARY KEY NOT NULL,
    last BIGINT NOT NULL
);

ALTER TABLE tickets ADD COLUMN number TEXT;

-- Tickets already there are numbered in the order they were opened, per year (at least six
-- digits, as the server writes them).
UPDATE tickets SET number = numbered.number
FROM (
    SELECT id, 'TKT-' || to_char(created_at, 'YYYY') || '-' ||
           lpad(n::text, GREATEST(6, length(n::text)), '0') AS number
    FROM (
        SELECT id, created_at, ROW_NUMBER() OVER (PARTITION BY date_part('year', created_at)
                                                  ORDER BY created_at, id) AS n
        FROM tickets
    ) AS ranked
) AS numbered
WHERE numbered.id = tickets.id;

ALTER TABLE tickets ALTER COLUMN number SET NOT NULL;

INSERT INTO ticket_counters (year, last)
SELECT date_part('year', created_at)::integer, COUNT(*) FROM tickets
GROUP BY date_part('year', created_at);

CREATE UNIQUE INDEX tickets_number_idx ON tickets (number);
