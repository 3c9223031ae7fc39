//! Reads a config document (JSON with comments) and lowers it into the
//! behaviour model, checking every value on the way.
//!
//! The format is the original Thespian's, unchanged, so configs written for
//! it keep working. Every error names where the document came from and the
//! JSON path of the offending value, so a typo deep in a nested function is
//! found at once.
//!
//! Its parts, one file each:
//!
//! - here: the [`Config`], read from a file or from memory.
//! - `format`: the document's shape, as the original wrote it.
//! - `lower`: lowering that shape into the behaviour model.
//! - `load`: lowering the actions whose work is real: Burn, HoldMemory.
//! - `error`: the [`ConfigError`], at the JSON path of the value to fix.
//! - `reload`: reading `CONFIG_FILE` again when it changes.

mod error;
mod format;
mod load;
mod lower;
mod reload;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_failures;

use std::{io::Read, path::Path, sync::Arc};

pub use error::ConfigError;
use error::Invalid;
use format::DocumentSpec;
use lower::{Lowered, lower_method};
pub use reload::{Reloading, watch};

use crate::{
    behaviour::{Behaviour, Constant, Director, MAX_SCENARIOS, MethodName, Scenario},
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
    /// The scenarios the document declares, in its order.
    pub scenarios: Vec<Scenario>,
}

impl Config {
    /// Reads and checks the config file at `path`, compiling the scripts it
    /// names with `scripting`.
    pub fn from_file(path: &Path, scripting: &Scripting) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| ConfigError::whole(&origin, format!("cannot read the file: {e}")))?;
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

    /// Reads, checks and lowers a document. An array where an object
    /// belongs is refused as what it is, whether or not serde objected.
    fn from_reader(
        reader: impl Read,
        origin: &str,
        scripting: &Scripting,
    ) -> Result<Config, ConfigError> {
        let mut text = String::new();
        json_comments::CommentSettings::c_style()
            .strip_comments(reader)
            .read_to_string(&mut text)
            .map_err(|e| ConfigError::whole(origin, format!("cannot read the config: {e}")))?;
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        let document: DocumentSpec = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| ConfigError::from_serde(origin, &text, e))?;
        deserializer
            .end()
            .map_err(|e| ConfigError::whole(origin, e.to_string()))?;
        if let Some(error) = ConfigError::misplaced_array(origin, &text) {
            return Err(error);
        }
        Config::lower(document, scripting).map_err(|invalid| ConfigError::at(origin, invalid))
    }

    /// Lowers each method the document describes, keeping the scripts
    /// among them so they can be reloaded.
    fn lower(document: DocumentSpec, scripting: &Scripting) -> Result<Config, Invalid> {
        let mut config = Config {
            legacy_service_name: document.service_name,
            scenarios: checked_scenarios(document.scenarios.unwrap_or_default())?,
            ..Config::default()
        };
        let specs = [
            document.grpc_method_a,
            document.grpc_method_b,
            document.grpc_method_c,
        ];
        for (method, spec) in MethodName::ALL.into_iter().zip(specs) {
            if let Some(mut spec) = spec {
                let path = format!("grpc_method_{}", method.as_str().to_lowercase());
                config
                    .behaviour
                    .set_attributes(method, std::mem::take(&mut spec.attributes));
                let director: Arc<dyn Director> = match lower_method(spec, &path, scripting)? {
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

/// The scenarios, refused when there are too many or two share a name,
/// since a name is how each is started, stopped and shown.
fn checked_scenarios(scenarios: Vec<Scenario>) -> Result<Vec<Scenario>, Invalid> {
    if scenarios.len() > MAX_SCENARIOS {
        return Err((
            "scenarios".to_owned(),
            format!(
                "a config may declare at most {MAX_SCENARIOS} scenarios, not {}",
                scenarios.len()
            ),
        ));
    }
    for (i, scenario) in scenarios.iter().enumerate() {
        if scenarios[..i].iter().any(|s| s.name == scenario.name) {
            return Err((
                format!("scenarios[{i}].name"),
                format!("another scenario is named `{}` already", scenario.name),
            ));
        }
    }
    Ok(scenarios)
}
