-- Times a caller sent with nanoseconds were stored as SQLite text with nine digits, which the
-- storyline's cursor (microseconds) never matches. Cut them to microseconds in the text diesel
-- writes for that time ("%F %T%.f": no fraction, 3 or 6 digits), as the server now stores them.
UPDATE storyline_events SET occurred_at = CASE
    WHEN substr(occurred_at, 21, 6) = '000000' THEN substr(occurred_at, 1, 19)
    WHEN substr(occurred_at, 24, 3) = '000' THEN substr(occurred_at, 1, 23)
    ELSE substr(occurred_at, 1, 26) END
WHERE length(occurred_at) = 29;
UPDATE client_requests SET due_at = CASE
    WHEN substr(due_at, 21, 6) = '000000' THEN substr(due_at, 1, 19)
    WHEN substr(due_at, 24, 3) = '000' THEN substr(due_at, 1, 23)
    ELSE substr(due_at, 1, 26) END
WHERE length(due_at) = 29;
