ALTER TABLE users DROP COLUMN capacity;
