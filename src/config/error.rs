//! A config's errors: where the document came from, and the JSON path of
//! the value to fix, found even where serde would blame the wrong one.

use std::fmt;

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

/// A problem found while lowering: the JSON path and what is wrong there.
pub(super) type Invalid = (String, String);

impl ConfigError {
    /// An error in the document as a whole, with no path to point at.
    pub(crate) fn whole(origin: &str, message: String) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            path: None,
            message,
        }
    }

    /// An error at the JSON path a lowering found it.
    pub(crate) fn at(origin: &str, (path, message): Invalid) -> ConfigError {
        ConfigError {
            origin: origin.to_owned(),
            path: Some(path),
            message,
        }
    }

    /// serde's refusal of `text`, at the path of the value to fix.
    pub(super) fn from_serde(
        origin: &str,
        text: &str,
        error: serde_path_to_error::Error<serde_json::Error>,
    ) -> ConfigError {
        let mut path = error.path().to_string();
        // serde reads an object of the format from an array of its field
        // values, and then blames a field inside the array; an array where
        // an object belongs is reported as what it is.
        if let Some(array) =
            ConfigError::misplaced_array(origin, text).filter(|array| match &array.path {
                None => true,
                Some(at) => path
                    .strip_prefix(at.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['[', '.'])),
            })
        {
            return array;
        }
        let message = error.inner().to_string();
        // An unknown key is reported at the object that holds it, and so is
        // a syntax error between two keys, which the path would otherwise
        // end in a `?` for.
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
    }

    /// The first array in `text` where an object belongs, if any: serde
    /// may have read it without objecting.
    pub(super) fn misplaced_array(origin: &str, text: &str) -> Option<ConfigError> {
        let value = serde_json::from_str::<serde_json::Value>(text).ok()?;
        let (path, message) = refuse_arrays_for_objects(&value, "").err()?;
        Some(ConfigError {
            origin: origin.to_owned(),
            path: Some(path).filter(|p| !p.is_empty()),
            message,
        })
    }
}

/// The keys whose values are lists. serde would also take any object of
/// the format written as an array of its field values (`["sleep", 10]` for
/// a Sleep); the format has no such form, so an array anywhere else is
/// refused at its path, and so is a document that is not an object.
/// `params` is the script's own data and may hold anything. An attribute's
/// `one_of` and `int_range` are lists too, and so is a duration's `weighted`,
/// and a retry policy's codes, under either of gRPC's names, and the
/// document's `scenarios`.
const LIST_KEYS: [&str; 11] = [
    "operations",
    "ConcurrentActions",
    "weighted",
    "failures",
    "primary",
    "fallback",
    "one_of",
    "int_range",
    "retryable_status_codes",
    "retryableStatusCodes",
    "scenarios",
];

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
            Value::Array(_) if key == "duration" => {
                return Err((
                    at,
                    "expected a duration (milliseconds, a string such as \"250ms\", or an \
                     object naming a distribution), found an array"
                        .to_owned(),
                ));
            }
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
