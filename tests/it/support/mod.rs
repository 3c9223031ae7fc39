//! Test-only helpers shared by Thespian's integration tests.
//!
//! Each test module uses the part it needs: [`instance`] runs the real
//! binary, [`otlp`] is an in-process OTLP/gRPC collector and [`loki`] an
//! in-process Loki push endpoint, so telemetry is checked by *receiving* it
//! over the real wire formats.

// Not every helper is used yet.
#![allow(dead_code, unused_imports)]

pub mod instance;
pub mod loki;
pub mod otlp;
