DROP INDEX users_agency_role_idx;
