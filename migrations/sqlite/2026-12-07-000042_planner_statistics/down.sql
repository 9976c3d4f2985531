DELETE FROM sqlite_stat1;
DROP INDEX users_agency_role_idx;
