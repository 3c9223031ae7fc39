//! The one factory for the Rhai engine that runs scripts, with the sandbox
//! and the [`limits`](super::limits) applied, so production and tests see
//! exactly the same language.

use rhai::{
    Engine,
    module_resolvers::DummyModuleResolver,
    packages::{
        ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage,
        BasicMapPackage, BasicMathPackage, BasicStringPackage, LogicPackage, MoreStringPackage,
        Package,
    },
};

use super::{
    builder, host,
    limits::{Limits, MAX_FUNCTIONS, MAX_VARIABLES},
};
use crate::behaviour::LogLevel;

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
