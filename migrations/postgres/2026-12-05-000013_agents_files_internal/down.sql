-- Which files were visible before cannot be told apart now: nothing to undo.
SELECT 1;
