//! How spans and log records are batched on their way to the collector: the
//! standard `OTEL_BSP_*` and `OTEL_BLRP_*` settings, with Thespian's defaults
//! sized for bursts, and the queue settings made from them.
//!
//! Thespian's own queues take them from here. The SDK's span batch
//! configuration, which `thespian poke` uses, reads these variables from
//! the environment by itself; every field it reads is set here explicitly,
//! so what it read never counts and these settings are the only source.

use std::{num::NonZeroUsize, time::Duration};

use super::export_queue::QueueSettings;

/// The span queue by default: deep enough to ride out a burst of tens of
/// thousands of requests, bounded so a dead collector costs at most a few
/// tens of megabytes.
const SPAN_QUEUE: usize = 65_536;
/// How many spans or log records go in one export by default.
const BATCH: usize = 2_048;
/// How long a batch waits to fill by default, in milliseconds.
const DELAY_MS: u64 = 200;
/// How many span batches may be on their way at once by default. With one,
/// the queue waits out each round trip, and on a busy machine a
/// two-instance chain filled it while the collector was idle between
/// batches.
const SPAN_EXPORTS: NonZeroUsize = NonZeroUsize::new(2).unwrap();
/// How long one export may take by default: the SDK's own 30 s.
const EXPORT_TIMEOUT_MS: u64 = 30_000;
/// The log record queue by default: records are bigger than spans, so the
/// queue is shallower.
const LOG_QUEUE: usize = 16_384;

/// The batch settings of spans and log records, each one of the standard
/// variables. A value that is not a whole number is ignored, leaving the
/// default, as the OpenTelemetry SDKs do.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Batching {
    /// Spans waiting for export before new ones are dropped (and counted).
    #[arg(
        long = "otel-bsp-max-queue-size",
        env = "OTEL_BSP_MAX_QUEUE_SIZE",
        value_name = "N",
        default_value_t = SPAN_QUEUE,
        value_parser = number_or(SPAN_QUEUE),
        global = true,
        hide_short_help = true
    )]
    pub span_queue: usize,

    /// Spans per export; never more than the queue holds.
    #[arg(
        long = "otel-bsp-max-export-batch-size",
        env = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        value_name = "N",
        default_value_t = BATCH,
        value_parser = number_or(BATCH),
        global = true,
        hide_short_help = true
    )]
    pub span_batch: usize,

    /// Milliseconds at most that a part batch of spans waits to fill.
    #[arg(
        long = "otel-bsp-schedule-delay",
        env = "OTEL_BSP_SCHEDULE_DELAY",
        value_name = "MS",
        default_value_t = DELAY_MS,
        value_parser = number_or(DELAY_MS),
        global = true,
        hide_short_help = true
    )]
    pub span_delay_ms: u64,

    /// Span batches on their way to the collector at once; 0 means the default.
    #[arg(
        long = "otel-bsp-max-concurrent-exports",
        env = "OTEL_BSP_MAX_CONCURRENT_EXPORTS",
        value_name = "N",
        default_value_t = SPAN_EXPORTS,
        value_parser = number_or(SPAN_EXPORTS),
        global = true,
        hide_short_help = true
    )]
    pub span_exports: NonZeroUsize,

    /// Milliseconds one span export may take before it is given up.
    #[arg(
        long = "otel-bsp-export-timeout",
        env = "OTEL_BSP_EXPORT_TIMEOUT",
        value_name = "MS",
        default_value_t = EXPORT_TIMEOUT_MS,
        value_parser = number_or(EXPORT_TIMEOUT_MS),
        global = true,
        hide_short_help = true
    )]
    pub span_export_timeout_ms: u64,

    /// Log records waiting for export before new ones are dropped (and counted).
    #[arg(
        long = "otel-blrp-max-queue-size",
        env = "OTEL_BLRP_MAX_QUEUE_SIZE",
        value_name = "N",
        default_value_t = LOG_QUEUE,
        value_parser = number_or(LOG_QUEUE),
        global = true,
        hide_short_help = true
    )]
    pub log_queue: usize,

    /// Log records per export; never more than the queue holds.
    #[arg(
        long = "otel-blrp-max-export-batch-size",
        env = "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        value_name = "N",
        default_value_t = BATCH,
        value_parser = number_or(BATCH),
        global = true,
        hide_short_help = true
    )]
    pub log_batch: usize,

    /// Milliseconds at most that a part batch of log records waits to fill.
    #[arg(
        long = "otel-blrp-schedule-delay",
        env = "OTEL_BLRP_SCHEDULE_DELAY",
        value_name = "MS",
        default_value_t = DELAY_MS,
        value_parser = number_or(DELAY_MS),
        global = true,
        hide_short_help = true
    )]
    pub log_delay_ms: u64,

    /// Milliseconds one log record export may take before it is given up.
    #[arg(
        long = "otel-blrp-export-timeout",
        env = "OTEL_BLRP_EXPORT_TIMEOUT",
        value_name = "MS",
        default_value_t = EXPORT_TIMEOUT_MS,
        value_parser = number_or(EXPORT_TIMEOUT_MS),
        global = true,
        hide_short_help = true
    )]
    pub log_export_timeout_ms: u64,
}

impl Batching {
    /// The SDK span batch processor's settings, for the spans `thespian poke` makes.
    pub fn spans(&self) -> opentelemetry_sdk::trace::BatchConfig {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_max_queue_size(self.span_queue)
            .with_max_export_batch_size(self.span_batch)
            .with_scheduled_delay(Duration::from_millis(self.span_delay_ms))
            .with_max_concurrent_exports(self.span_exports.get())
            .with_max_export_timeout(Duration::from_millis(self.span_export_timeout_ms))
            .build()
    }

    /// How Thespian's own span queue batches.
    pub(super) fn span_settings(&self) -> QueueSettings {
        QueueSettings {
            max_queue: self.span_queue,
            batch: self.span_batch.clamp(1, self.span_queue.max(1)),
            delay: Duration::from_millis(self.span_delay_ms),
            exports: self.span_exports.get(),
            timeout: Duration::from_millis(self.span_export_timeout_ms),
        }
    }

    /// How Thespian's own log record queue batches: one export at a time,
    /// as the SDK's batch log processor does.
    pub(super) fn log_settings(&self) -> QueueSettings {
        QueueSettings {
            max_queue: self.log_queue,
            batch: self.log_batch.clamp(1, self.log_queue.max(1)),
            delay: Duration::from_millis(self.log_delay_ms),
            exports: 1,
            timeout: Duration::from_millis(self.log_export_timeout_ms),
        }
    }
}

/// The settings a command line without any of the variables gives, for
/// tests that change only those they are about.
#[cfg(test)]
impl Default for Batching {
    fn default() -> Self {
        Batching {
            span_queue: SPAN_QUEUE,
            span_batch: BATCH,
            span_delay_ms: DELAY_MS,
            span_exports: SPAN_EXPORTS,
            span_export_timeout_ms: EXPORT_TIMEOUT_MS,
            log_queue: LOG_QUEUE,
            log_batch: BATCH,
            log_delay_ms: DELAY_MS,
            log_export_timeout_ms: EXPORT_TIMEOUT_MS,
        }
    }
}

/// Parses a number the way the SDKs read their batch variables: anything
/// that is not one (a word, a negative number, 0 where 0 makes no sense)
/// means `default`, rather than refusing to start.
fn number_or<T>(default: T) -> impl Fn(&str) -> Result<T, std::convert::Infallible> + Clone
where
    T: std::str::FromStr + Copy + Send + Sync + 'static,
{
    move |value| Ok(value.parse().unwrap_or(default))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Batching;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        batching: Batching,
    }

    fn parse(args: &[&str]) -> Batching {
        Command::try_parse_from(std::iter::once("thespian").chain(args.iter().copied()))
            .unwrap()
            .batching
    }

    #[test]
    fn the_defaults_for_tests_are_the_command_lines() {
        assert_eq!(
            format!("{:?}", Batching::default()),
            format!("{:?}", parse(&[]))
        );
    }

    #[test]
    fn a_value_that_is_not_a_number_leaves_the_default() {
        let batching = parse(&[
            "--otel-bsp-max-queue-size=lots",
            "--otel-bsp-schedule-delay=-5",
            "--otel-bsp-max-concurrent-exports=0",
            "--otel-blrp-max-queue-size=",
        ]);
        assert_eq!(batching.span_queue, 65_536);
        assert_eq!(batching.span_delay_ms, 200);
        assert_eq!(batching.span_exports.get(), 2);
        assert_eq!(batching.log_queue, 16_384);
    }

    #[test]
    fn a_number_is_taken_as_given() {
        let batching = parse(&[
            "--otel-bsp-max-queue-size=10",
            "--otel-bsp-max-concurrent-exports=3",
            "--otel-blrp-schedule-delay=7",
        ]);
        assert_eq!(batching.span_queue, 10);
        assert_eq!(batching.span_exports.get(), 3);
        assert_eq!(batching.log_delay_ms, 7);
    }

    #[test]
    fn the_span_capacity_counts_batches_no_bigger_than_the_queue() {
        let batching = parse(&[
            "--otel-bsp-max-queue-size=10",
            "--otel-bsp-max-export-batch-size=1000",
            "--otel-bsp-max-concurrent-exports=2",
        ]);
        // The queue, and two batches being exported.
        assert_eq!(batching.span_settings().capacity(), 10 + 2 * 10);
    }
}
