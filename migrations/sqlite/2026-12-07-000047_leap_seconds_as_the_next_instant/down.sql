-- The instants are the same ones, written as PostgreSQL writes them: nothing to undo.
SELECT 1;
