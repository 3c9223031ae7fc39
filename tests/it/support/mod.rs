//! Test-only helpers shared by Thespian's integration tests.
//!
//! Each test module uses the part it needs: [`instance`] runs the real
//! binary, configured by the environment variables [`settings`] knows;
//! [`otlp`] is an in-process OTLP/gRPC collector and [`loki`] an in-process
//! Loki push endpoint, built on what [`receiver`] shares, so telemetry is
//! checked by *receiving* it over the real wire formats; [`prometheus`]
//! names what a Prometheus would store and reads PromQL, and
//! [`instruments`] reads the metrics Thespian's code declares. [`query_api`]
//! serves what the OTLP collector received through Jaeger's and Tempo's
//! trace-by-id APIs, for `thespian poke --verify`. [`config`] builds the
//! pieces of config documents many tests write.

use std::time::Duration;

pub mod config;
pub mod instance;
pub mod instruments;
pub mod loki;
pub mod otlp;
pub mod prometheus;
pub mod query_api;
pub mod receiver;
pub mod settings;

/// How long a test usually waits for something it expects, such as
/// telemetry to arrive or an instance to exit: generous, because CI
/// machines are small, but a passing test stops waiting as soon as it
/// happens.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(20);
