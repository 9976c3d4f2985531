-- How many cases each client has open (not in a terminal status) at each agency, kept by the
-- transactions that create and close cases. The card's `client_open_cases` reads one row (agency
-- staff) or the client's few rows (the client, platform staff) instead of every case the client
-- ever bought, which grows with their history (bench/RESULTS.md, "Cost that grows right").
CREATE TABLE client_open_cases (
    client_id  TEXT NOT NULL REFERENCES users (id),
    agency_id  TEXT NOT NULL REFERENCES agencies (id),
    open_cases BIGINT NOT NULL CHECK (open_cases >= 0),
    PRIMARY KEY (client_id, agency_id)
);

INSERT INTO client_open_cases (client_id, agency_id, open_cases)
SELECT client_id, agency_id, COUNT(*)
FROM cases
WHERE status NOT IN ('rejected', 'closed', 'cancelled')
GROUP BY client_id, agency_id;
