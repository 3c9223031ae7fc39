//! Received log records, flattened with their resource and scope.

use std::fmt;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::value::{
    Attributed, Attributes, Value, attributes_map, flatten_resource, hex, scope_name,
};

/// One received log record, flattened with its resource and scope.
#[derive(Clone, Debug)]
pub struct ReceivedLogRecord {
    /// The resource's `service.name`, if it had one.
    pub service_name: Option<String>,
    /// The instrumentation scope's name.
    pub scope_name: String,
    /// The body as text: the string itself for a string body, the printed
    /// value for any other body, empty when there is none.
    pub body: String,
    /// The body as sent, if any.
    pub body_value: Option<Value>,
    /// The severity text (e.g. `INFO`).
    pub severity_text: String,
    /// The severity number (OTLP `SeverityNumber`, e.g. 9 for INFO).
    pub severity_number: i32,
    /// The trace id as lowercase hex, or empty when logged outside a trace.
    pub trace_id: String,
    /// The span id as lowercase hex, or empty when logged outside a span.
    pub span_id: String,
    /// The record's attributes.
    pub attributes: Attributes,
}

impl Attributed for ReceivedLogRecord {
    fn attributes(&self) -> &Attributes {
        &self.attributes
    }
}

impl ReceivedLogRecord {
    /// The log records of one export request.
    pub(super) fn flatten(request: &ExportLogsServiceRequest) -> Vec<ReceivedLogRecord> {
        let mut out = Vec::new();
        for rl in &request.resource_logs {
            let (_, service_name) = flatten_resource(rl.resource.as_ref());
            for sl in &rl.scope_logs {
                let scope_name = scope_name(sl.scope.as_ref());
                for record in &sl.log_records {
                    let body_value = record.body.as_ref().map(|b| Value::from_proto(Some(b)));
                    let body = match &body_value {
                        Some(Value::Str(s)) => s.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    };
                    out.push(ReceivedLogRecord {
                        service_name: service_name.clone(),
                        scope_name: scope_name.clone(),
                        body,
                        body_value,
                        severity_text: record.severity_text.clone(),
                        severity_number: record.severity_number,
                        trace_id: hex(&record.trace_id),
                        span_id: hex(&record.span_id),
                        attributes: Attributes(attributes_map(&record.attributes)),
                    });
                }
            }
        }
        out
    }
}

impl fmt::Display for ReceivedLogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "log {} {:?} [{}] trace={} span={} attrs={}",
            if self.severity_text.is_empty() {
                "<no severity>"
            } else {
                &self.severity_text
            },
            self.body,
            self.service_name.as_deref().unwrap_or("<no service.name>"),
            if self.trace_id.is_empty() {
                "-"
            } else {
                &self.trace_id
            },
            if self.span_id.is_empty() {
                "-"
            } else {
                &self.span_id
            },
            self.attributes,
        )
    }
}
