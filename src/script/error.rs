//! How a script's problems read: a compile error names the script, line and
//! column; a runtime error or thrown value becomes the status and message a
//! request fails with.

use std::fmt;

use rhai::{Dynamic, EvalAltResult, LexError, Map, ParseError, ParseErrorType, Position};

use super::limits::Limits;
use crate::{behaviour::Raise, failure};

/// A script that cannot be used, or a runtime error, placed in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// The script's file path, or where an inline script sits in the config.
    pub label: String,
    /// The 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// The 1-based column, when the problem has a position.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ScriptError {
    /// A problem at `position` in the script called `label`.
    pub fn at(label: &str, position: Position, message: impl Into<String>) -> ScriptError {
        ScriptError {
            label: label.to_owned(),
            line: position.line(),
            column: position.position(),
            message: message.into(),
        }
    }

    /// A syntax error found while compiling.
    pub(super) fn syntax(label: &str, error: &ParseError) -> ScriptError {
        ScriptError::at(
            label,
            error.position(),
            format!("syntax error: {}", error.err_type()),
        )
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(
                f,
                "{}, line {line}, column {column}: {}",
                self.label, self.message
            ),
            (Some(line), None) => write!(f, "{}, line {line}: {}", self.label, self.message),
            _ => write!(f, "{}: {}", self.label, self.message),
        }
    }
}

impl std::error::Error for ScriptError {}

/// Marks a runtime error raised by a host function (a bad argument, a limit)
/// apart from a value the script threw itself.
const HOST_ERROR_TAG: i16 = 0x7e5;

/// A runtime error from a host function, at `position` in the script. A
/// script can catch it like any error.
pub(super) fn host_error(message: impl Into<String>, position: Position) -> Box<EvalAltResult> {
    let mut value = Dynamic::from(message.into());
    value.set_tag(HOST_ERROR_TAG.into());
    Box::new(EvalAltResult::ErrorRuntime(value, position))
}

/// What a serde `Deserialize` impl objected to in a script's value, without
/// Rhai's wrapping: its serde errors arrive dressed as a bad symbol.
pub(super) fn serde_reason(error: &EvalAltResult) -> String {
    match error {
        EvalAltResult::ErrorParsing(
            ParseErrorType::BadInput(LexError::ImproperSymbol(_, message)),
            _,
        ) => message.clone(),
        other => other.to_string(),
    }
}

/// The step that fails a request the way `error` says: a thrown
/// `#{code, message}` chooses both; anything else is `INTERNAL` with the
/// script's name, the position and what went wrong.
pub(super) fn raise(error: &EvalAltResult, label: &str, limits: &Limits) -> Raise {
    let error = error.unwrap_inner();
    let position = error.position();
    let internal = |message: String| Raise {
        name: "script error".to_owned(),
        code: tonic::Code::Internal,
        message: ScriptError::at(label, position, message).to_string(),
    };
    match error {
        EvalAltResult::ErrorRuntime(value, _)
            if i64::from(value.tag()) == i64::from(HOST_ERROR_TAG) =>
        {
            internal(value.to_string())
        }
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<Map>() {
            Some(map) => match chosen_status(&map) {
                Ok((code, Some(message))) => Raise {
                    name: "script error".to_owned(),
                    code,
                    message,
                },
                Ok((code, None)) => Raise {
                    code,
                    ..internal(format!("threw {value:?}"))
                },
                Err(problem) => internal(format!("threw {value:?}, but {problem}")),
            },
            None => internal(format!("threw {value:?}")),
        },
        EvalAltResult::ErrorTooManyOperations(_) => internal(format!(
            "ran more than {} operations (SCRIPT_MAX_OPERATIONS)",
            limits.max_operations
        )),
        EvalAltResult::ErrorTerminated(..) => internal(format!(
            "ran longer than {} ms (SCRIPT_TIMEOUT_MS)",
            limits.timeout_ms
        )),
        EvalAltResult::ErrorStackOverflow(_) => internal(format!(
            "calls nested more than {} deep (SCRIPT_MAX_CALL_DEPTH)",
            limits.max_call_depth
        )),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let what = what.to_lowercase();
            internal(if what.contains("string") {
                format!(
                    "a string grew past {} bytes (SCRIPT_MAX_STRING_BYTES)",
                    limits.max_string_bytes
                )
            } else if what.contains("map") {
                format!(
                    "a map grew past {} properties (SCRIPT_MAX_MAP_LEN)",
                    limits.max_map_len
                )
            } else if what.contains("array") {
                format!(
                    "an array grew past {} elements (SCRIPT_MAX_ARRAY_LEN)",
                    limits.max_array_len
                )
            } else {
                format!("{what} is too large")
            })
        }
        other => {
            // Rhai ends its message with the position, which is said first here.
            let text = other.to_string();
            let suffix = format!(" ({position})");
            internal(text.strip_suffix(&suffix).unwrap_or(&text).to_owned())
        }
    }
}

/// The status a thrown map chooses: `code` (a gRPC code name such as
/// `"NOT_FOUND"` or `"not_found"`, or its number) and an optional `message`.
fn chosen_status(map: &Map) -> Result<(tonic::Code, Option<String>), String> {
    let code = map
        .get("code")
        .ok_or("the map has no `code`, so the request fails with INTERNAL")?;
    let code = if let Ok(number) = code.as_int() {
        failure::code_from_number(number)
    } else if let Some(name) = code.read_lock::<rhai::ImmutableString>() {
        failure::code_from_name(&name)
    } else {
        None
    }
    .ok_or_else(|| format!("`code` {code:?} is not a gRPC error code"))?;
    let message = map.get("message").map(|message| {
        message
            .read_lock::<rhai::ImmutableString>()
            .map_or_else(|| message.to_string(), |text| text.to_string())
    });
    Ok((code, message))
}
