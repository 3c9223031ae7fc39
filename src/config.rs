//! Reads a config document (JSON with comments) and lowers it into the
//! behaviour model, checking every value on the way.
//!
//! The format is the original Thespian's, unchanged, so configs written for
//! it keep working. Every error names where the document came from and the
//! JSON path of the offending value, so a typo deep in a nested function is
//! found at once.

use std::{fmt, io::Read, path::Path, sync::Arc, time::Duration};

use serde::Deserialize;

use crate::{
    behaviour::{
        Behaviour, Call, Concurrently, Constant, Director, Fault, Function, Latency, MethodName,
        Sleep, Step, Target,
    },
    script::{Script, Scripting},
};

/// A config document, checked and lowered.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// What each method acts out.
    pub behaviour: Behaviour,
    /// The original format's top-level `service_name`. It is ignored, since
    /// `SERVICE_NAME` names the instance, but kept so the caller can warn.
    pub legacy_service_name: Option<String>,
    /// The scripts the methods run, so they can be reloaded when they change.
    pub scripts: Vec<Arc<Script>>,
}

/// A config that cannot be used, with enough context to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the document came from: a file path or `CONFIG_JSON`.
    pub origin: String,
    /// The JSON path of the bad value, when there is one.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) if !path.is_empty() => {
                write!(f, "{}: at `{}`: {}", self.origin, path, self.message)
            }
            _ => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks the config file at `path`, compiling the scripts it
    /// names with `scripting`.
    pub fn from_file(path: &Path, scripting: &Scripting) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            path: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Config::from_reader(file, &origin, scripting)
    }

    /// Reads and checks a document held in memory, such as `CONFIG_JSON`.
    /// `origin` names it in errors.
    pub fn from_str(
        text: &str,
        origin: &str,
        scripting: &Scripting,
    ) -> Result<Config, ConfigError> {
        Config::from_reader(text.as_bytes(), origin, scripting)
    }

    fn from_reader(
        reader: impl Read,
        origin: &str,
        scripting: &Scripting,
    ) -> Result<Config, ConfigError> {
        let mut text = String::new();
        json_comments::CommentSettings::c_style()
            .strip_comments(reader)
            .read_to_string(&mut text)
            .map_err(|e| ConfigError {
                origin: origin.to_owned(),
                path: None,
                message: format!("cannot read the config: {e}"),
            })?;
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        // serde reads an object of the format from an array of its field
        // values, and then blames a field inside the array; an array where
        // an object belongs is reported as what it is, whether or not serde
        // objected.
        let misplaced_array = || {
            let value = serde_json::from_str::<serde_json::Value>(&text).ok()?;
            let (path, message) = refuse_arrays_for_objects(&value, "").err()?;
            Some(ConfigError {
                origin: origin.to_owned(),
                path: Some(path).filter(|p| !p.is_empty()),
                message,
            })
        };
        let document: DocumentSpec =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                let mut path = e.path().to_string();
                if let Some(error) = misplaced_array().filter(|array| match &array.path {
                    None => true,
                    Some(at) => path
                        .strip_prefix(at.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['[', '.'])),
                }) {
                    return error;
                }
                let message = e.inner().to_string();
                // An unknown key is reported at the object that holds it,
                // and so is a syntax error between two keys, which the path
                // would otherwise end in a `?` for.
                if (message.starts_with("unknown field") || path.ends_with(".?"))
                    && let Some((parent, _)) = path.rsplit_once('.')
                {
                    path = parent.to_owned();
                }
                ConfigError {
                    origin: origin.to_owned(),
                    path: Some(path).filter(|p| p != "."),
                    message,
                }
            })?;
        deserializer.end().map_err(|e| ConfigError {
            origin: origin.to_owned(),
            path: None,
            message: e.to_string(),
        })?;
        if let Some(error) = misplaced_array() {
            return Err(error);
        }
        document
            .lower(scripting)
            .map_err(|(path, message)| ConfigError {
                origin: origin.to_owned(),
                path: Some(path),
                message,
            })
    }
}

/// A problem found while lowering: the JSON path and what is wrong there.
type Invalid = (String, String);

/// The keys whose values are lists. serde would also take any object of
/// the format written as an array of its field values (`["sleep", 10]` for
/// a Sleep); the format has no such form, so an array anywhere else is
/// refused at its path, and so is a document that is not an object.
/// `params` is the script's own data and may hold anything.
const LIST_KEYS: [&str; 2] = ["operations", "ConcurrentActions"];

/// Walks `value`, found at `path`, for an array where an object belongs.
fn refuse_arrays_for_objects(value: &serde_json::Value, path: &str) -> Result<(), Invalid> {
    use serde_json::Value;
    let Value::Object(members) = value else {
        return match (path.is_empty(), value) {
            (true, _) => Err((String::new(), "the config must be a JSON object".to_owned())),
            (false, Value::Array(_)) => Err((
                path.to_owned(),
                "expected an object, found an array".to_owned(),
            )),
            (false, _) => Ok(()),
        };
    };
    for (key, member) in members {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match member {
            _ if key == "params" => {}
            Value::Array(items) if LIST_KEYS.contains(&key.as_str()) => {
                for (i, item) in items.iter().enumerate() {
                    refuse_arrays_for_objects(item, &format!("{at}[{i}]"))?;
                }
            }
            _ => refuse_arrays_for_objects(member, &at)?,
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a config object")]
struct DocumentSpec {
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    grpc_method_a: Option<MethodSpec>,
    #[serde(default)]
    grpc_method_b: Option<MethodSpec>,
    #[serde(default)]
    grpc_method_c: Option<MethodSpec>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a method: an object with tracing_name and operations or a script"
)]
struct MethodSpec {
    tracing_name: String,
    #[serde(default)]
    operations: Option<Vec<OperationSpec>>,
    /// A Rhai script file, relative to `SCRIPTS_DIR`.
    #[serde(default)]
    script: Option<String>,
    /// A Rhai script written inline.
    #[serde(default)]
    script_source: Option<String>,
    /// What a script sees as `params`.
    #[serde(default)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
enum OperationSpec {
    Action(ActionSpec),
    ConcurrentActions(Vec<ActionSpec>),
}

#[derive(Deserialize)]
enum ActionSpec {
    Function(FunctionSpec),
    Sleep(SleepSpec),
    CallService(CallServiceSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionSpec {
    tracing_name: String,
    operations: Vec<OperationSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepSpec {
    tracing_name: String,
    #[serde(deserialize_with = "milliseconds")]
    duration_ms: u64,
    #[serde(default, deserialize_with = "chance")]
    failure_chance: Option<f64>,
}

/// A `duration_ms`, refused in the format's words rather than as a `u64`.
fn milliseconds<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Milliseconds;
    impl serde::de::Visitor<'_> for Milliseconds {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of milliseconds, 0 or more")
        }
        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<u64, E> {
            Ok(ms)
        }
        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<u64, E> {
            u64::try_from(ms)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(ms), &self))
        }
    }
    deserializer.deserialize_u64(Milliseconds)
}

/// A `failure_chance`, refused in the format's words rather than as an
/// `f64`; its range is checked when the config is lowered.
fn chance<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    struct Chance;
    impl serde::de::Visitor<'_> for Chance {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number from 0 to 1")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_f64<E: serde::de::Error>(self, p: f64) -> Result<Option<f64>, E> {
            Ok(Some(p))
        }
        fn visit_u64<E: serde::de::Error>(self, p: u64) -> Result<Option<f64>, E> {
            Ok(Some(p as f64))
        }
        fn visit_i64<E: serde::de::Error>(self, p: i64) -> Result<Option<f64>, E> {
            Ok(Some(p as f64))
        }
    }
    deserializer.deserialize_any(Chance)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallServiceSpec {
    #[serde(default)]
    tracing_name: Option<String>,
    service_address: String,
    service_port: PortSpec,
    grpc_method: String,
}

/// The original wrote ports as strings; numbers are accepted too.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortSpec {
    Number(i64),
    Text(String),
}

impl DocumentSpec {
    fn lower(self, scripting: &Scripting) -> Result<Config, Invalid> {
        let mut config = Config {
            legacy_service_name: self.service_name,
            ..Config::default()
        };
        let specs = [self.grpc_method_a, self.grpc_method_b, self.grpc_method_c];
        for (method, spec) in MethodName::ALL.into_iter().zip(specs) {
            if let Some(spec) = spec {
                let path = format!("grpc_method_{}", method.as_str().to_lowercase());
                let director: Arc<dyn Director> = match spec.lower(&path, scripting)? {
                    Lowered::Constant(step) => Arc::new(Constant(step)),
                    Lowered::Script(script) => {
                        config.scripts.push(Arc::clone(&script));
                        script
                    }
                };
                config.behaviour.set(method, director);
            }
        }
        Ok(config)
    }
}

/// A method lowered: a tree built once at startup, or a script that builds
/// one per request.
enum Lowered {
    Constant(Arc<Step>),
    Script(Arc<Script>),
}

impl MethodSpec {
    fn lower(self, path: &str, scripting: &Scripting) -> Result<Lowered, Invalid> {
        let params = self.params.unwrap_or_default();
        match (self.operations, self.script, self.script_source) {
            (Some(operations), None, None) => {
                if !params.is_empty() {
                    return Err((
                        format!("{path}.params"),
                        "`params` are for scripts; this method has `operations`".to_owned(),
                    ));
                }
                let steps = lower_operations(operations, &format!("{path}.operations"))?;
                Ok(Lowered::Constant(Arc::new(Step::Function(Function {
                    name: self.tracing_name,
                    steps,
                }))))
            }
            (None, Some(file), None) => scripting
                .load_file(&file, self.tracing_name, &params)
                .map(Lowered::Script)
                .map_err(|e| (format!("{path}.script"), e.to_string())),
            (None, None, Some(source)) => scripting
                .load_source(
                    &format!("{path}.script_source"),
                    &source,
                    self.tracing_name,
                    &params,
                )
                .map(Lowered::Script)
                .map_err(|e| (format!("{path}.script_source"), e.to_string())),
            _ => Err((
                path.to_owned(),
                "give exactly one of `operations`, `script` (a file) or `script_source` (inline)"
                    .to_owned(),
            )),
        }
    }
}

fn lower_operations(operations: Vec<OperationSpec>, path: &str) -> Result<Vec<Step>, Invalid> {
    operations
        .into_iter()
        .enumerate()
        .map(|(i, operation)| match operation {
            OperationSpec::Action(action) => action.lower(&format!("{path}[{i}].Action")),
            OperationSpec::ConcurrentActions(actions) => {
                let branches = actions
                    .into_iter()
                    .enumerate()
                    .map(|(j, action)| action.lower(&format!("{path}[{i}].ConcurrentActions[{j}]")))
                    .collect::<Result<_, _>>()?;
                Ok(Step::Concurrently(Concurrently {
                    name: None,
                    branches,
                }))
            }
        })
        .collect()
}

impl ActionSpec {
    fn lower(self, path: &str) -> Result<Step, Invalid> {
        match self {
            ActionSpec::Function(function) => {
                let path = format!("{path}.Function");
                Ok(Step::Function(Function {
                    name: function.tracing_name,
                    steps: lower_operations(function.operations, &format!("{path}.operations"))?,
                }))
            }
            ActionSpec::Sleep(sleep) => {
                let path = format!("{path}.Sleep");
                let fault = sleep
                    .failure_chance
                    .map(Fault::internal)
                    .transpose()
                    .map_err(|e| (format!("{path}.failure_chance"), e.to_string()))?;
                Ok(Step::Sleep(Sleep {
                    name: sleep.tracing_name,
                    latency: Latency::Fixed(Duration::from_millis(sleep.duration_ms)),
                    fault,
                }))
            }
            ActionSpec::CallService(call) => {
                let path = format!("{path}.CallService");
                let port = match call.service_port {
                    PortSpec::Number(n) => u16::try_from(n).ok(),
                    PortSpec::Text(text) => text.trim().parse::<u16>().ok(),
                }
                .filter(|port| *port != 0)
                .ok_or_else(|| {
                    (
                        format!("{path}.service_port"),
                        "must be a port number from 1 to 65535".to_owned(),
                    )
                })?;
                let target = Target::from_parts(&call.service_address, port)
                    .map_err(|e| (format!("{path}.service_address"), e))?;
                let method = call
                    .grpc_method
                    .parse()
                    .map_err(|e| (format!("{path}.grpc_method"), e))?;
                Ok(Step::Call(Call {
                    name: call.tracing_name.unwrap_or_else(|| "call".to_owned()),
                    target,
                    method,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> ConfigError {
        Config::from_str(text, "test.jsonc", &Scripting::default())
            .expect_err("the config should be refused")
    }

    #[test]
    fn a_typo_is_reported_at_its_json_path() {
        let error = error_of(
            r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
                {"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1}}},
                {"ConcurrentActions": [{"Sleep": {"tracing_name": "s", "duraton_ms": 1}}]}
            ]}}"#,
        );
        assert_eq!(
            error.path.as_deref(),
            Some("grpc_method_a.operations[1].ConcurrentActions[0].Sleep")
        );
        assert!(
            error.message.contains("unknown field `duraton_ms`"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("test.jsonc: at `grpc_method_a")
        );
    }

    #[test]
    fn values_out_of_range_are_reported_at_their_path() {
        let error = error_of(
            r#"{"grpc_method_b": {"tracing_name": "t", "operations": [
                {"Action": {"Function": {"tracing_name": "f", "operations": [
                    {"Action": {"Sleep": {"tracing_name": "s", "duration_ms": 1, "failure_chance": 1.5}}}
                ]}}}
            ]}}"#,
        );
        assert_eq!(
            error.path.as_deref(),
            Some(
                "grpc_method_b.operations[0].Action.Function.operations[0].Action.Sleep.failure_chance"
            )
        );
    }

    #[test]
    fn bad_ports_and_methods_are_refused() {
        let call = |port: &str, method: &str| {
            format!(
                r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": [{{"Action": {{"CallService":
                {{"service_address": "http://localhost", "service_port": {port}, "grpc_method": "{method}"}}}}}}]}}}}"#
            )
        };
        assert!(
            error_of(&call("\"70000\"", "A"))
                .path
                .unwrap()
                .ends_with("service_port")
        );
        assert!(
            error_of(&call("0", "A"))
                .path
                .unwrap()
                .ends_with("service_port")
        );
        assert!(
            error_of(&call("6379", "D"))
                .path
                .unwrap()
                .ends_with("grpc_method")
        );
        assert!(Config::from_str(&call("\"6379\"", "B"), "x", &Scripting::default()).is_ok());
        assert!(Config::from_str(&call("6379", "C"), "x", &Scripting::default()).is_ok());
    }

    #[test]
    fn comments_and_legacy_service_name_are_accepted() {
        let config = Config::from_str(
            "// leading\n{\"service_name\": \"old\", /* inline */ \"grpc_method_c\": null}",
            "x",
            &Scripting::default(),
        )
        .unwrap();
        assert_eq!(config.legacy_service_name.as_deref(), Some("old"));
        assert!(
            MethodName::ALL
                .iter()
                .all(|m| config.behaviour.get(*m).is_none())
        );
    }

    #[test]
    fn syntax_errors_give_a_line_and_column() {
        let error = error_of("{\n  \"grpc_method_a\": {,\n}");
        assert!(error.message.contains("line 2"), "{error}");
    }

    #[test]
    fn arrays_in_place_of_objects_are_refused_at_their_path() {
        for (text, path) in [
            ("[]", None),
            (r#"{"grpc_method_a": ["t", []]}"#, Some("grpc_method_a")),
            (
                r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
                    {"ConcurrentActions": [{"Sleep": ["s", 10]}]}
                ]}}"#,
                Some("grpc_method_a.operations[0].ConcurrentActions[0].Sleep"),
            ),
            (
                r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
                    {"Action": {"Function": ["f", []]}}
                ]}}"#,
                Some("grpc_method_a.operations[0].Action.Function"),
            ),
        ] {
            let error = error_of(text);
            assert_eq!(error.path.as_deref(), path, "{text}: {error}");
            assert!(error.message.contains("object"), "{text}: {error}");
        }
    }

    #[test]
    fn arrays_serde_would_misread_are_refused_as_arrays() {
        // Read as a Sleep's field values, `["s", "10"]` fails on the
        // duration's type; the mistake is the array, so that is reported.
        let error = error_of(
            r#"{"grpc_method_a": {"tracing_name": "t", "operations": [
                {"Action": {"Sleep": ["s", "10"]}}
            ]}}"#,
        );
        assert_eq!(
            error.path.as_deref(),
            Some("grpc_method_a.operations[0].Action.Sleep"),
            "{error}"
        );
        assert!(error.message.contains("found an array"), "{error}");
    }

    #[test]
    fn a_syntax_error_between_keys_names_the_object_not_a_question_mark() {
        let error = error_of(r#"{"grpc_method_a": {"tracing_name": "t" "operations": []}}"#);
        assert_eq!(error.path.as_deref(), Some("grpc_method_a"), "{error}");
        assert!(error.message.contains("line 1 column"), "{error}");
    }

    #[test]
    fn bad_numbers_are_refused_in_the_formats_words() {
        let sleep = |fields: &str| {
            format!(
                r#"{{"grpc_method_a": {{"tracing_name": "t", "operations": [
                    {{"Action": {{"Sleep": {{"tracing_name": "s", {fields}}}}}}}
                ]}}}}"#
            )
        };
        for (fields, expected) in [
            (r#""duration_ms": -5"#, "a whole number of milliseconds"),
            (r#""duration_ms": 2.5"#, "a whole number of milliseconds"),
            (r#""duration_ms": "10""#, "a whole number of milliseconds"),
            (
                r#""duration_ms": 1, "failure_chance": "0.5""#,
                "a number from 0 to 1",
            ),
        ] {
            let error = error_of(&sleep(fields));
            assert!(error.message.contains(expected), "{fields}: {error}");
            assert!(!error.message.contains("u64"), "{fields}: {error}");
        }
        for fields in [
            r#""duration_ms": 0"#,
            r#""duration_ms": 1, "failure_chance": 1"#,
            r#""duration_ms": 1, "failure_chance": 0.25"#,
            r#""duration_ms": 1, "failure_chance": null"#,
        ] {
            Config::from_str(&sleep(fields), "x", &Scripting::default())
                .unwrap_or_else(|e| panic!("{fields}: {e}"));
        }
    }

    #[test]
    fn params_may_hold_arrays() {
        let text = r#"{"grpc_method_a": {"tracing_name": "t", "script_source": "sleep(1);",
            "params": {"shards": [["a", 1], ["b", 2]]}}}"#;
        Config::from_str(text, "x", &Scripting::default()).unwrap();
    }

    #[test]
    fn trailing_garbage_is_refused() {
        error_of("{} {}");
    }
}
