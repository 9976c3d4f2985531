-- An operator's own capacity (open cases, or worked tickets, before the automatic assignment
-- passes them over); NULL follows the server's DOSSIER_OPERATOR_CAPACITY.
ALTER TABLE users ADD COLUMN capacity INTEGER CHECK (capacity BETWEEN 0 AND 1000);
