-- Agency staff of one role (the agency's people told of a case nobody holds, the operators
-- automatic assignment serves), found by agency and role instead of every user of that role.
CREATE INDEX users_agency_role_idx ON users (agency_id, role, id);
