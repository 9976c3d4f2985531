-- The cut nanoseconds are gone: nothing to undo.
SELECT 1;
