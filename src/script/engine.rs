//! The one factory for the Rhai engine that runs scripts, with the sandbox
//! and its limits, so production and tests see exactly the same language.

use std::time::Duration;

use rhai::{
    Engine,
    module_resolvers::DummyModuleResolver,
    packages::{
        ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage,
        BasicMapPackage, BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage,
        Package,
    },
};

use super::{builder, host};
use crate::behaviour::LogLevel;

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
const MAX_VARIABLES: usize = 1_000;

/// The most functions a script may define.
const MAX_FUNCTIONS: usize = 256;

/// Builds the engine every script runs on.
///
/// It starts from [`Engine::new_raw`], which has no functions at all, and
/// adds only the packages a pretend service needs. That leaves out Rhai's
/// own `sleep`, which would block a runtime thread, along with `exit`,
/// `timestamp` and `parse_json`. `eval` and `import` are disabled outright,
/// and no module resolver can reach the file system, so a script touches
/// nothing outside itself except through Thespian's host functions.
pub fn build(limits: &Limits) -> Engine {
    let mut engine = Engine::new_raw();
    ArithmeticPackage::new().register_into_engine(&mut engine);
    LogicPackage::new().register_into_engine(&mut engine);
    BasicStringPackage::new().register_into_engine(&mut engine);
    MoreStringPackage::new().register_into_engine(&mut engine);
    BasicIteratorPackage::new().register_into_engine(&mut engine);
    BasicFnPackage::new().register_into_engine(&mut engine);
    BasicArrayPackage::new().register_into_engine(&mut engine);
    BasicMapPackage::new().register_into_engine(&mut engine);
    BasicMathPackage::new().register_into_engine(&mut engine);

    engine
        .disable_symbol("eval")
        .disable_symbol("import")
        .set_module_resolver(DummyModuleResolver::new())
        .set_max_modules(0)
        // Typos are caught when the script is compiled, not mid-request.
        .set_strict_variables(true)
        // `params.ordrs` is an error rather than a silent `()`.
        .set_fail_on_invalid_map_property(true)
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_string_size(limits.max_string_bytes)
        .set_max_array_size(limits.max_array_len)
        .set_max_map_size(limits.max_map_len)
        .set_max_variables(MAX_VARIABLES)
        .set_max_functions(MAX_FUNCTIONS)
        .on_progress(builder::progress)
        // `print` and `debug` record a log line as a step, so it is
        // written when the story reaches it rather than while the script
        // is read: after the call before it, inside its block's span.
        .on_print(|text| builder::log(LogLevel::Info, text, None))
        .on_debug(|text, _source, position| builder::log(LogLevel::Debug, text, position.line()));
    host::register(&mut engine);
    engine
}
