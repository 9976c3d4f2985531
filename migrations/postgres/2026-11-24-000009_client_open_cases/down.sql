DROP TABLE client_open_cases;
