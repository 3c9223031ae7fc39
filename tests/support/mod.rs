//! Test-only helpers shared by Thespian's integration tests.
//!
//! Each integration test binary declares `mod support;` and uses the part it
//! needs: [`otlp`] is an in-process OTLP/gRPC collector and [`loki`] an
//! in-process Loki push endpoint, so telemetry is checked by *receiving* it
//! over the real wire formats.

// Every test binary compiles this module but uses only a subset of it.
#![allow(dead_code, unused_imports)]

pub mod instance;
pub mod loki;
pub mod otlp;
