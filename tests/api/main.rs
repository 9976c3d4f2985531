//! Integration tests through HTTP against the real app, one fresh database per test: SQLite by
//! default, PostgreSQL when `TEST_DATABASE_URL` is set.

mod helpers;
mod receiver;
mod smtp;
mod world;

mod attachments;
mod audit;
mod auth;
mod auto_assign;
mod cases;
mod config;
mod email;
mod errors;
mod locations;
mod messages;
mod migrations;
mod notifications;
mod openapi;
mod operations;
mod plans;
mod presence;
mod requests;
mod required_data;
mod rules;
mod services;
mod sla;
mod storyline;
mod surveys;
mod ticket_files;
mod tickets;
mod triggers;
mod users;
mod webhooks;
mod workflow;
mod writes;
