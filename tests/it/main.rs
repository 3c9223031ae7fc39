//! Thespian's integration tests, linked into one binary: each module checks
//! one subject from outside, mostly by running the real `thespian` binary
//! and receiving what it exports, and [`support`] holds what they share.
//!
//! They are one binary, not one per file, so Thespian, its dependencies and
//! the support code are compiled and linked once for all of them.

mod support;

mod calls;
mod config_errors;
mod control;
mod dashboards;
mod dependencies;
mod dropped_spans;
mod environment;
mod executor;
mod executor_outcomes;
mod failures;
mod front_ends;
mod grpcurl;
mod load;
mod mesh;
mod outcomes;
mod poke;
mod poke_traces;
mod queue;
mod receivers;
mod reload;
mod render;
mod replay;
mod scenario_effects;
mod scenarios;
mod scripts;
mod shutdown;
mod signals;
mod smoke;
mod span_count;
mod traces;
mod up;
