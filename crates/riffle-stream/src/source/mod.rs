//! Event sources: where the events a pipeline decodes and aggregates come from.
//!
//! Each source hands out owned raw messages (payload plus message key, which
//! [`crate::decode::Decoder::decode`] turns into events) and a way to say "everything up to
//! here is durable in the store".
//!
//! - [`kafka`]: a consumer in a consumer group, with explicit commits, rebalance
//!   awareness and lag from librdkafka's statistics.
//!
//! This folder will also hold the file-tail, HTTP-push and generator sources, one module
//! each.

pub mod kafka;
