//! Posbon ingest: the gate every event passes.
//!
//! Events arrive on the JetStream stream INGEST (`posbon.ingest.<kind>`, one
//! JSON event, an array, or NDJSON) and over HTTP (`POST /v1/events`). Each item
//! is validated on its own ([`posbon_model::parse_event`]); valid events have
//! fraud account references pseudonymised, are located
//! ([`posbon_geo::Registry::locate_many`]) and published to EVENTS on
//! `posbon.events.<region>.<district>.<mahalla>.<kind>` with the event id as
//! `Nats-Msg-Id`, so JetStream drops duplicates. Invalid items go to the
//! dead-letter subject `posbon.dlq.<kind>` with their original bytes and the
//! reasons in headers. A producer's message is acknowledged only after
//! JetStream acknowledged everything it produced; otherwise it is offered again.

pub mod config;
pub mod consumer;
mod enrich;
mod http;
mod run;
pub mod serve;
mod service;

pub use config::{FileConfig, IngestConfig};
pub use enrich::{BodyFormat, Enricher};
pub use run::{build, routes};
pub use service::{Body, Ingest, ItemReport, ItemStatus, MAX_DEAD_LETTER_PAYLOAD, Source};
