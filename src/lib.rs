//! Dossier: a case-management REST API over SQLite or PostgreSQL.
//!
//! `config` reads settings; `db` holds connections, schema and migrations; `repo` holds every
//! query; `auth` knows who is calling; `api` holds the handlers, one module per resource;
//! `http` holds what all handlers share (errors rendering, extractors, middleware, metrics);
//! `domain` the vocabulary resources share and `errors` the one error type; `workflow` and
//! `ticket_workflow` are the case's and the ticket's lifecycles as data, `i18n` their labels;
//! `sla` keeps the SLA clocks over `business_time`'s calendars; `triggers` runs agencies' own
//! rules and `rules` the server's; `events` is what follows an event (webhook deliveries,
//! triggers, notifications), and `webhooks` and `mailer` deliver them out of the service;
//! `live` wakes streams and workers; `storage` keeps attachment blobs in object storage and
//! `sealing` encrypts secrets at rest; `housekeeping` sweeps what expires; `openapi` assembles
//! the contract; `app` wires it together; `cli` is the command line.

pub mod api;
pub mod app;
pub mod auth;
pub mod business_time;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod errors;
pub mod events;
pub mod housekeeping;
pub mod http;
pub mod i18n;
pub mod live;
pub mod mailer;
pub mod openapi;
pub mod repo;
pub mod rules;
pub mod sealing;
pub mod sla;
pub mod storage;
pub mod ticket_workflow;
pub mod triggers;
pub mod webhooks;
pub mod workflow;
