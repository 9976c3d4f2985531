//! Dossier: a case-management REST API over SQLite or PostgreSQL.
//!
//! `config` reads settings; `db` holds connections, schema and migrations; `repo` holds every
//! query; `auth` knows who is calling; `api` holds the handlers, one module per resource;
//! `http` holds what all handlers share (errors rendering, extractors, middleware, metrics);
//! `storage` keeps attachment blobs in object storage; `live` wakes notification streams;
//! `mailer` drains the e-mail outbox through SMTP; `rules` fires the server's own business
//! rules; `housekeeping` sweeps what expires; `workflow` is the case lifecycle as data; `i18n`
//! its labels; `openapi` assembles the contract; `app` wires it together; `cli` is the command
//! line.

pub mod api;
pub mod app;
pub mod auth;
pub mod business_time;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod errors;
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
