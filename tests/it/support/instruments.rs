//! The metric instruments Thespian's code declares, read from `src/`: each
//! `meter.<number>_<instrument>("name")` with the unit its builder sets.
//!
//! A dashboard may chart a metric that only a setting or a scenario makes,
//! which a short test run need not make; it is still real if the code
//! declares it. The dashboard test checks this reading against a run, so
//! a declaration it failed to see shows up there.

use std::path::Path;

use super::otlp::MetricKind;
use super::prometheus::series_of;

/// One instrument as declared: its OTLP name, unit and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    /// The instrument's name, such as `rpc.server.call.duration`.
    pub name: String,
    /// The unit its builder sets, or empty.
    pub unit: String,
    /// The kind of OTLP metric it makes.
    pub kind: MetricKind,
    /// For sums: whether they only grow (a counter, not an up-down counter).
    pub monotonic: bool,
}

impl Declared {
    /// The series Prometheus's OTLP receiver stores for it.
    pub fn series(&self) -> Vec<String> {
        series_of(&self.name, &self.unit, self.kind, self.monotonic)
    }
}

/// Every instrument declared in the Rust files under `folder`.
pub fn declared_in(folder: &Path) -> Vec<Declared> {
    let mut found = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read a source folder") {
            let path = entry.expect("a source entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                found.extend(declarations(&text));
            }
        }
    }
    found
}

/// The instruments declared in one file's `text`: a method such as
/// `f64_histogram` or `i64_observable_up_down_counter` called with a
/// string literal, and the `.with_unit("...")` before its `.build()`.
fn declarations(text: &str) -> Vec<Declared> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("(\"") {
        let method_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let method = &rest[method_start..at];
        let after = &rest[at + 2..];
        rest = after;
        let Some(kind) = instrument_kind(method) else {
            continue;
        };
        let Some(end) = after.find('"') else { break };
        let builder = &after[..after.find(".build()").unwrap_or(after.len())];
        let unit = builder
            .split_once(".with_unit(\"")
            .and_then(|(_, unit)| unit.split_once('"'))
            .map_or("", |(unit, _)| unit);
        found.push(Declared {
            name: after[..end].to_owned(),
            unit: unit.to_owned(),
            kind: kind.0,
            monotonic: kind.1,
        });
    }
    found
}

/// The OTLP kind (and whether monotonic) a meter method makes, if it is
/// one: `<u64|i64|f64>_[observable_]<counter|up_down_counter|gauge|histogram>`.
fn instrument_kind(method: &str) -> Option<(MetricKind, bool)> {
    let instrument = ["u64_", "i64_", "f64_"]
        .iter()
        .find_map(|number| method.strip_prefix(number))?;
    let instrument = instrument.strip_prefix("observable_").unwrap_or(instrument);
    match instrument {
        "counter" => Some((MetricKind::Sum, true)),
        "up_down_counter" => Some((MetricKind::Sum, false)),
        "gauge" => Some((MetricKind::Gauge, false)),
        "histogram" => Some((MetricKind::Histogram, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_gives_its_name_unit_and_kind() {
        let source = r#"
            let a = meter.f64_histogram("rpc.server.call.duration").with_description("x (y)").with_unit("s").build();
            let b = meter.i64_gauge("thespian.scenario.active").with_description("gauge").build();
            let c = meter.u64_observable_counter("made").with_unit("{span}").build();
            let d = format!("{}", "not an instrument");
        "#;
        let found = declarations(source);
        let names: Vec<(&str, &str, MetricKind, bool)> = found
            .iter()
            .map(|d| (d.name.as_str(), d.unit.as_str(), d.kind, d.monotonic))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "rpc.server.call.duration",
                    "s",
                    MetricKind::Histogram,
                    false
                ),
                ("thespian.scenario.active", "", MetricKind::Gauge, false),
                ("made", "{span}", MetricKind::Sum, true),
            ]
        );
        assert_eq!(found[1].series(), ["thespian_scenario_active"]);
    }
}
