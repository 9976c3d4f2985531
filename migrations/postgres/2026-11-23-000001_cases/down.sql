DROP TABLE idempotency_keys;
DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE case_fields;
DROP TABLE case_agents;
DROP TABLE cases;
DROP TABLE case_counters;
DROP TABLE services;
