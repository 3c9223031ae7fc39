//! Scripted behaviour: Rhai scripts that build a method's step tree afresh
//! on every request, for the one [`Executor`](crate::executor::Executor) to
//! act out.
//!
//! A script is compiled once, when the config is read (and again when its
//! file changes, see [`watch`]). Each request evaluates it synchronously in
//! [`Director::direct`]: the host functions (`sleep`, `call`,
//! `fail_with_chance`, `function`, `concurrently`) only record steps, so no
//! request holds a thread while it waits, and every request rolls its own
//! dice. The price is that a script cannot see how a call went: it decides
//! the story up front.

mod annotations;
mod builder;
mod engine;
mod error;
mod host;
mod limits;
mod watch;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, RwLock},
};

use rhai::{AST, Dynamic, Engine, Scope};

pub use error::ScriptError;
pub use limits::{Limits, ScriptSettings};
pub use watch::{Watch, watch};
pub(crate) use watch::{folder_of, watch_folders};

use crate::{
    behaviour::{Director, Function, Step},
    executor::Dice,
};

/// What loading scripts needs: the one engine every script shares, where
/// script files live, and the limits. Cheap to clone.
#[derive(Clone)]
pub struct Scripting {
    /// Shared by every script and request: building it is the expensive
    /// part, so it is built when the first script is loaded. An instance
    /// without scripts never builds it, and never pages its code in.
    engine: Arc<OnceLock<Arc<Engine>>>,
    /// Relative script paths resolve against this.
    dir: PathBuf,
    /// Also held by each script, for the deadline and messages.
    limits: Limits,
}

impl fmt::Debug for Scripting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scripting")
            .field("dir", &self.dir)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Scripting {
    fn default() -> Self {
        Scripting::new(&ScriptSettings::default())
    }
}

impl Scripting {
    /// Builds the engine with `settings`' limits.
    pub fn new(settings: &ScriptSettings) -> Scripting {
        Scripting {
            engine: Arc::default(),
            dir: settings.scripts_dir.clone(),
            limits: settings.limits,
        }
    }

    /// The engine, built on first use.
    fn engine(&self) -> Arc<Engine> {
        Arc::clone(
            self.engine
                .get_or_init(|| Arc::new(engine::build(&self.limits))),
        )
    }

    /// Loads and compiles the script file `file` (relative to the scripts
    /// directory unless absolute) as the behaviour of a method whose span is
    /// named `tracing_name`; the script sees `params` as a constant map.
    pub fn load_file(
        &self,
        file: &str,
        tracing_name: String,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Arc<Script>, ScriptError> {
        let path = self.dir.join(file);
        let label = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| ScriptError {
            label: label.clone(),
            line: None,
            column: None,
            message: format!("cannot read the script: {e}"),
        })?;
        let script = self.script(label, Some(path), tracing_name, params)?;
        script.install(text)?;
        Ok(Arc::new(script))
    }

    /// Compiles a script given inline; `label` says where it sits, for errors.
    pub fn load_source(
        &self,
        label: &str,
        text: &str,
        tracing_name: String,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Arc<Script>, ScriptError> {
        let script = self.script(label.to_owned(), None, tracing_name, params)?;
        script.install(text.to_owned())?;
        Ok(Arc::new(script))
    }

    fn script(
        &self,
        label: String,
        path: Option<PathBuf>,
        tracing_name: String,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Script, ScriptError> {
        let params = rhai::serde::to_dynamic(params).map_err(|e| ScriptError {
            label: label.clone(),
            line: None,
            column: None,
            message: format!("`params` cannot be given to a script: {e}"),
        })?;
        Ok(Script {
            tracing_name,
            label: label.into(),
            path,
            params,
            engine: self.engine(),
            limits: self.limits,
            program: RwLock::new(Arc::new(AST::empty())),
            last_read: Mutex::new(String::new()),
        })
    }
}

/// A compiled script serving one method. Requests evaluate the version that
/// was current when they started; a reload swaps in a new one for the
/// requests after.
pub struct Script {
    /// The method's span name, as a JSON method's `tracing_name`.
    tracing_name: String,
    /// The file path, or where an inline script sits in the config.
    label: Arc<str>,
    /// The file, for scripts that have one: what [`watch`] looks at.
    path: Option<PathBuf>,
    /// The config's `params`, visible to the script as the constant `params`.
    params: Dynamic,
    /// The shared engine.
    engine: Arc<Engine>,
    /// The limits in force.
    limits: Limits,
    /// The version serving requests.
    program: RwLock<Arc<AST>>,
    /// The text last read, compiled or not, so an unchanged file is neither
    /// compiled again nor, when broken, reported again.
    last_read: Mutex<String>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("tracing_name", &self.tracing_name)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The file is as it was: nothing to do.
    Unchanged,
    /// The new version compiled and now serves.
    Reloaded,
    /// The new version does not compile or cannot be read; the last good
    /// one keeps serving.
    Failed(ScriptError),
}

impl Script {
    /// The file path, or where an inline script sits in the config.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The script's file, if it has one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the file again and, if it changed and compiles, serves the new
    /// version from the next request on.
    pub fn reload(&self) -> Reload {
        let Some(path) = &self.path else {
            return Reload::Unchanged;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                return Reload::Failed(ScriptError {
                    label: self.label.to_string(),
                    line: None,
                    column: None,
                    message: format!("cannot read the script, so the last good version stays: {e}"),
                });
            }
        };
        if *self.last_read.lock().unwrap_or_else(|e| e.into_inner()) == text {
            return Reload::Unchanged;
        }
        match self.install(text) {
            Ok(()) => Reload::Reloaded,
            Err(e) => Reload::Failed(e),
        }
    }

    /// Compiles `text` and, if it compiles, makes it the serving version.
    fn install(&self, text: String) -> Result<(), ScriptError> {
        let compiled = self.compile(&text);
        *self.last_read.lock().unwrap_or_else(|e| e.into_inner()) = text;
        let ast = compiled?;
        *self.program.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ast);
        Ok(())
    }

    fn compile(&self, text: &str) -> Result<AST, ScriptError> {
        // The compiler only needs to know that `params` exists. Told it is a
        // constant, the optimiser would fold its value into the script, and
        // Rhai 1.27 then panics on `params.x = ..` instead of refusing it.
        let mut scope = Scope::new();
        scope.push("params", ());
        let mut ast = self
            .engine
            .compile_with_scope(&scope, text)
            .map_err(|e| ScriptError::syntax(&self.label, &e))?;
        ast.set_source(self.label.as_ref());
        Ok(ast)
    }
}

impl Director for Script {
    fn direct(&self) -> Arc<Step> {
        self.direct_with(Dice::default())
    }

    fn direct_with(&self, dice: Dice) -> Arc<Step> {
        let program = Arc::clone(&self.program.read().unwrap_or_else(|e| e.into_inner()));
        let mut scope = Scope::new();
        scope.push_constant("params", self.params.clone());
        let (steps, attributes) = builder::build(&self.label, &self.limits, dice, || {
            self.engine.run_ast_with_scope(&mut scope, &program)
        });
        Arc::new(Step::Function(Function {
            name: self.tracing_name.clone(),
            steps,
            attributes,
        }))
    }

    /// A script's `header` reads them.
    fn reads_headers(&self) -> bool {
        true
    }

    fn script(&self) -> Option<&str> {
        Some(&self.label)
    }
}

#[cfg(test)]
mod tests;
