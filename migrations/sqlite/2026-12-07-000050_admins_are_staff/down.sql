-- Which agents and clients had the flag is not kept: nothing to restore.
SELECT 1;
