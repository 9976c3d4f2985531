-- PostgreSQL stores microseconds already; SQLite's migration of the same number cuts the
-- nanoseconds it kept.
SELECT 1;
