-- The admin flag is for agency and platform staff: an agent or a client with it (the command
-- line and `POST /v1/users` took one before) meant nothing to the server, but their tokens and
-- `/v1/me` said `admin`, which frontends read to show managers' screens.
UPDATE users SET is_admin = false, version = version + 1 WHERE role IN ('agent', 'client') AND is_admin;
