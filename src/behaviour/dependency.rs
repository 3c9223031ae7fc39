//! What a sleep stands for when it stands for a call to something that is
//! not a Thespian: a database, a cache or a message queue. The step is
//! still acted out as a wait, but its span says what a client library's
//! span would, so a tracing backend draws the dependency as a node of its
//! own.
//!
//! One [`Deserialize`] impl reads it, from a config's `"as"` object and
//! from a script's `as` option alike.

use serde::Deserialize;

/// The longest name, system, operation, target or address, in bytes.
pub const MAX_TEXT_BYTES: usize = 256;
/// The longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 2048;

/// A dependency a sleep stands for a call to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "DependencySpec")]
pub struct Dependency {
    /// What the dependency is called in the service graph: `peer.service`.
    pub name: String,
    /// Where it listens: `server.address`, the name unless given.
    pub address: String,
    /// Its port, `server.port`, when given.
    pub port: Option<u16>,
    /// What kind of dependency it is, and what the call does there.
    pub kind: DependencyKind,
    /// The span name the conventions give such a call, worked out once.
    span_name: String,
}

/// The kinds of dependency, each with what its conventions record.
#[derive(Debug, Clone, PartialEq)]
pub enum DependencyKind {
    /// A database or cache: a CLIENT span.
    Database {
        /// `db.system.name`, such as `postgresql` or `redis`.
        system: String,
        /// `db.namespace`: the dependency's name unless given, as tracing
        /// backends recognise a database call by it.
        namespace: String,
        /// `db.operation.name`, such as `SELECT`.
        operation: Option<String>,
        /// `db.collection.name`: the table or collection.
        collection: Option<String>,
        /// `db.query.text`, parameterised.
        query: Option<String>,
    },
    /// A message broker: a PRODUCER or CLIENT span, as the operation says.
    Messaging {
        /// `messaging.system`, such as `kafka` or `rabbitmq`.
        system: String,
        /// `messaging.destination.name`: the topic or queue.
        destination: Option<String>,
        /// `messaging.operation.type`.
        operation: MessagingOperation,
        /// `messaging.operation.name`: the system's own word for it, the
        /// operation type unless given.
        operation_name: String,
    },
}

/// What a messaging call does, by the conventions' `messaging.operation.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessagingOperation {
    /// Makes a message to send later (a PRODUCER span).
    Create,
    /// Sends messages to the broker (a PRODUCER span).
    Send,
    /// Asks the broker for messages (a CLIENT span).
    Receive,
    /// Handles a message that was received (a CONSUMER span).
    Process,
    /// Acknowledges or rejects messages (a CLIENT span).
    Settle,
}

impl MessagingOperation {
    /// The value of `messaging.operation.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingOperation::Create => "create",
            MessagingOperation::Send => "send",
            MessagingOperation::Receive => "receive",
            MessagingOperation::Process => "process",
            MessagingOperation::Settle => "settle",
        }
    }
}

impl Dependency {
    /// The span name the conventions give the call: `{operation} {target}`
    /// for a database, `{operation} {destination}` for messaging.
    pub fn span_name(&self) -> &str {
        &self.span_name
    }
}

/// The `"as"` object as written: one of `db` or `messaging`, and the keys
/// that kind takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with `db` or `messaging`")]
struct DependencySpec {
    #[serde(default)]
    db: Option<String>,
    #[serde(default)]
    messaging: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    operation_name: Option<String>,
}

/// Refuses `value`, named `key`, when it is empty or longer than `max`.
fn bounded(key: &str, value: Option<String>, max: usize) -> Result<Option<String>, String> {
    match value {
        Some(text) if text.trim().is_empty() => Err(format!("`{key}` must not be empty")),
        Some(text) if text.len() > max => Err(format!(
            "`{key}` may be at most {max} bytes, not {}",
            text.len()
        )),
        value => Ok(value),
    }
}

/// Refuses a key that belongs to the other kind of dependency.
fn unused(kind: &str, keys: &[(&str, bool)]) -> Result<(), String> {
    match keys.iter().find(|(_, given)| *given) {
        Some((key, _)) => Err(format!("`{key}` is not for a {kind} dependency")),
        None => Ok(()),
    }
}

impl TryFrom<DependencySpec> for Dependency {
    type Error = String;

    fn try_from(spec: DependencySpec) -> Result<Dependency, String> {
        let text = |key, value| bounded(key, value, MAX_TEXT_BYTES);
        let (system, messaging) = match (text("db", spec.db)?, text("messaging", spec.messaging)?) {
            (Some(system), None) => (system, false),
            (None, Some(system)) => (system, true),
            _ => return Err("give exactly one of `db` or `messaging`".to_owned()),
        };
        let name = text("name", spec.name)?.unwrap_or_else(|| system.clone());
        let address = text("address", spec.address)?.unwrap_or_else(|| name.clone());
        if spec.port == Some(0) {
            return Err("`port` must be from 1 to 65535".to_owned());
        }
        let operation = text("operation", spec.operation)?;
        let kind = if messaging {
            unused(
                "messaging",
                &[
                    ("namespace", spec.namespace.is_some()),
                    ("collection", spec.collection.is_some()),
                    ("query", spec.query.is_some()),
                ],
            )?;
            let operation = match operation.as_deref() {
                None => MessagingOperation::Send,
                Some(op) => MessagingOperation::deserialize(serde::de::value::StrDeserializer::<
                    serde::de::value::Error,
                >::new(op))
                .map_err(|_| {
                    format!(
                        "`operation` is `create`, `send`, `receive`, `process` or `settle`, \
                         not `{op}`"
                    )
                })?,
            };
            DependencyKind::Messaging {
                system,
                destination: text("destination", spec.destination)?,
                operation,
                operation_name: text("operation_name", spec.operation_name)?
                    .unwrap_or_else(|| operation.as_str().to_owned()),
            }
        } else {
            unused(
                "database",
                &[
                    ("destination", spec.destination.is_some()),
                    ("operation_name", spec.operation_name.is_some()),
                ],
            )?;
            DependencyKind::Database {
                system,
                namespace: text("namespace", spec.namespace)?.unwrap_or_else(|| name.clone()),
                operation,
                collection: text("collection", spec.collection)?,
                query: bounded("query", spec.query, MAX_QUERY_BYTES)?,
            }
        };
        let span_name = conventional_name(&kind);
        Ok(Dependency {
            name,
            address,
            port: spec.port,
            kind,
            span_name,
        })
    }
}

/// The span name by the conventions: the operation and its target, or
/// whichever of them there is.
fn conventional_name(kind: &DependencyKind) -> String {
    let (operation, target) = match kind {
        DependencyKind::Database {
            namespace,
            operation,
            collection,
            ..
        } => (
            operation.as_deref(),
            collection.as_deref().unwrap_or(namespace),
        ),
        DependencyKind::Messaging {
            destination,
            operation_name,
            ..
        } => match destination {
            Some(destination) => (Some(operation_name.as_str()), destination.as_str()),
            None => (None, operation_name.as_str()),
        },
    };
    match operation {
        Some(operation) => format!("{operation} {target}"),
        None => target.to_owned(),
    }
}

#[cfg(test)]
mod tests;
