-- PostgreSQL stores a leap second as the instant after it already; SQLite's migration of the
-- same number rewrites the ones it kept.
SELECT 1;
