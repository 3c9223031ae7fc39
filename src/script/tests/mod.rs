//! What a script builds, checked on the tree itself: the shape of the steps,
//! where errors land and what the limits stop. The spans those steps become
//! are checked end to end in `tests/it/scripts.rs`.

use std::time::{Duration, Instant};

use super::*;
use crate::behaviour::{Latency, Raise, Sleep};

mod annotations;
mod errors;
mod limits;
mod load;
mod request;
mod steps;
mod trouble;

fn scripting(limits: Limits) -> Scripting {
    Scripting::new(&ScriptSettings {
        scripts_dir: PathBuf::from("."),
        limits,
    })
}

fn script_with(limits: Limits, text: &str, params: serde_json::Value) -> Arc<Script> {
    let serde_json::Value::Object(params) = params else {
        panic!("params must be an object");
    };
    scripting(limits)
        .load_source("test.rhai", text, "method".to_owned(), &params)
        .unwrap_or_else(|e| panic!("the script should compile: {e}"))
}

fn script(text: &str) -> Arc<Script> {
    script_with(Limits::DEFAULT, text, serde_json::json!({}))
}

/// The steps one request gets, inside the method's function.
fn steps(script: &Script) -> Vec<Step> {
    match Arc::unwrap_or_clone(script.direct()) {
        Step::Function(Function { name, steps, .. }) => {
            assert_eq!(name, "method");
            steps
        }
        other => panic!("a script's tree is a function, not {other:?}"),
    }
}

fn compile_error(text: &str) -> ScriptError {
    scripting(Limits::DEFAULT)
        .load_source("test.rhai", text, "method".to_owned(), &Default::default())
        .expect_err("the script should not compile")
}

fn sleep_ms(step: &Step) -> (String, Duration) {
    match step {
        Step::Sleep(Sleep {
            name,
            latency: Latency::Fixed(duration),
            ..
        }) => (name.clone(), *duration),
        other => panic!("expected a sleep, got {other:?}"),
    }
}

fn raise(step: &Step) -> &Raise {
    match step {
        Step::Raise(raise) => raise,
        other => panic!("expected a raise, got {other:?}"),
    }
}

fn function(step: &Step) -> (&str, &[Step]) {
    match step {
        Step::Function(Function { name, steps, .. }) => (name, steps),
        other => panic!("expected a function, got {other:?}"),
    }
}
