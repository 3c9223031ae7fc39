//! How far scripting may reach, as the command line sets it: where script
//! files live and how much one evaluation of a script may do. It depends on
//! nothing else in the script module, so the engine, the step builder and the
//! error messages all read the same limits without reaching into each other.

use std::{path::PathBuf, time::Duration};

/// Where scripts come from and how much they may do: the command line's
/// share of scripting.
#[derive(Debug, Clone, clap::Args)]
pub struct ScriptSettings {
    /// Where a config's `"script"` file names are looked up; scripts there are
    /// reloaded when they change.
    #[arg(long, env = "SCRIPTS_DIR", default_value = "./scripts", global = true)]
    pub scripts_dir: PathBuf,

    /// What one evaluation of a script may do.
    #[command(flatten)]
    pub limits: Limits,
}

impl Default for ScriptSettings {
    fn default() -> Self {
        ScriptSettings {
            scripts_dir: PathBuf::from("./scripts"),
            limits: Limits::DEFAULT,
        }
    }
}

/// How much a script may do while it builds one request's steps. A runaway
/// script fails its request and nothing else: these bound its time and
/// memory, whatever it is written to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Limits {
    /// The most Rhai operations one evaluation may run, so a `loop {}` fails
    /// fast; 0 turns the limit off.
    #[arg(
        long = "script-max-operations",
        value_name = "N",
        env = "SCRIPT_MAX_OPERATIONS",
        default_value_t = Limits::DEFAULT.max_operations,
        global = true
    )]
    pub max_operations: u64,

    /// The most steps (sleeps, calls, functions...) one evaluation may build,
    /// so one request cannot grow without bound; 0 turns the limit off.
    #[arg(
        long = "script-max-steps",
        value_name = "N",
        env = "SCRIPT_MAX_STEPS",
        default_value_t = Limits::DEFAULT.max_steps,
        global = true
    )]
    pub max_steps: usize,

    /// How long one evaluation may run, in milliseconds of wall time. Only
    /// building the steps counts: the sleeps and calls it records happen
    /// later and may take as long as they say. 0 turns the limit off.
    #[arg(
        long = "script-timeout-ms",
        value_name = "MS",
        env = "SCRIPT_TIMEOUT_MS",
        default_value_t = Limits::DEFAULT.timeout_ms,
        global = true
    )]
    pub timeout_ms: u64,

    /// How deeply a script's own functions and closures may call each other;
    /// 0 allows no calls at all.
    #[arg(
        long = "script-max-call-depth",
        value_name = "N",
        env = "SCRIPT_MAX_CALL_DEPTH",
        default_value_t = Limits::DEFAULT.max_call_depth,
        global = true,
        hide_short_help = true
    )]
    pub max_call_depth: usize,

    /// How deeply expressions may nest, checked when a script is compiled; 0
    /// turns the limit off.
    #[arg(
        long = "script-max-expr-depth",
        value_name = "N",
        env = "SCRIPT_MAX_EXPR_DEPTH",
        default_value_t = Limits::DEFAULT.max_expr_depth,
        global = true,
        hide_short_help = true
    )]
    pub max_expr_depth: usize,

    /// The longest string a script may make, in bytes; 0 turns the limit off.
    #[arg(
        long = "script-max-string-bytes",
        value_name = "BYTES",
        env = "SCRIPT_MAX_STRING_BYTES",
        default_value_t = Limits::DEFAULT.max_string_bytes,
        global = true,
        hide_short_help = true
    )]
    pub max_string_bytes: usize,

    /// The most elements an array may hold, counting nested arrays' elements;
    /// 0 turns the limit off.
    #[arg(
        long = "script-max-array-len",
        value_name = "N",
        env = "SCRIPT_MAX_ARRAY_LEN",
        default_value_t = Limits::DEFAULT.max_array_len,
        global = true,
        hide_short_help = true
    )]
    pub max_array_len: usize,

    /// The most properties an object map may hold, counting nested maps'; 0
    /// turns the limit off.
    #[arg(
        long = "script-max-map-len",
        value_name = "N",
        env = "SCRIPT_MAX_MAP_LEN",
        default_value_t = Limits::DEFAULT.max_map_len,
        global = true,
        hide_short_help = true
    )]
    pub max_map_len: usize,
}

impl Limits {
    /// Generous for any pretend service (a fan-out over a hundred shards
    /// stays far inside them), small enough that ten thousand requests
    /// evaluating at once cannot exhaust memory.
    pub const DEFAULT: Limits = Limits {
        max_operations: 100_000,
        max_steps: 1_000,
        timeout_ms: 100,
        max_call_depth: 32,
        max_expr_depth: 64,
        max_string_bytes: 4 * 1024,
        max_array_len: 10_000,
        max_map_len: 10_000,
    };

    /// The wall-time budget of one evaluation.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The most variables a script may hold at once.
pub(super) const MAX_VARIABLES: usize = 1_000;

/// The most functions a script may define.
pub(super) const MAX_FUNCTIONS: usize = 256;
