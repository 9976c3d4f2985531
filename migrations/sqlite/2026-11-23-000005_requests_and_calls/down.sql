DROP TABLE video_calls;
DROP TABLE client_requests;
