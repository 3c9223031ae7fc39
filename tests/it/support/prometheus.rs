//! The Prometheus side of a dashboard check: the names Prometheus's OTLP
//! receiver gives the metrics it receives, and the metric names a PromQL
//! expression selects.
//!
//! The translation follows `prometheus/otlptranslator` (`metric_namer.go`,
//! `unit_namer.go`) under the strategy the stack's Prometheus uses:
//! `instrumentation/prometheus/prometheus.yaml` sets no
//! `otlp.translation_strategy`, so Prometheus 3 applies its default,
//! `UnderscoreEscapingWithSuffixes`: names escaped to `[a-zA-Z0-9_:]` with
//! unit and type suffixes added.

use super::otlp::{MetricKind, ReceivedMetric};

/// The OTLP (UCUM) units Prometheus spells out as a name suffix.
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
];

/// The units after a `/`, spelt as "per second" and so on.
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

/// The series names Prometheus stores for `metric` when it arrives over
/// OTLP.
pub fn series_names(metric: &ReceivedMetric) -> Vec<String> {
    let monotonic = metric.is_monotonic == Some(true);
    series_of(&metric.name, &metric.unit, metric.kind, monotonic)
}

/// The series names Prometheus stores for an OTLP metric called `name`, of
/// unit `unit` and kind `kind` (`monotonic` for a sum that only grows): a
/// histogram becomes `_bucket`, `_sum` and `_count` series.
pub fn series_of(name: &str, unit: &str, kind: MetricKind, monotonic: bool) -> Vec<String> {
    let counter = kind == MetricKind::Sum && monotonic;
    let gauge = kind == MetricKind::Gauge;
    let base = normalized_name(name, unit, counter, gauge);
    match kind {
        MetricKind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{base}{suffix}"))
            .collect(),
        MetricKind::Summary => vec![format!("{base}_sum"), format!("{base}_count"), base],
        MetricKind::Empty => Vec::new(),
        _ => vec![base],
    }
}

/// `normalizeName` of otlptranslator: the name's tokens, the unit's
/// suffixes unless a token already says them, `_total` for a monotonic
/// counter, `_ratio` for a gauge of unit `1`.
fn normalized_name(name: &str, unit: &str, counter: bool, gauge: bool) -> String {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit_suffixes(unit);
    let (main, per) = (clean(&main), clean(&per));
    let main = if tokens.contains(&main) {
        String::new()
    } else {
        main
    };
    let per = if per == "per_" {
        String::new()
    } else {
        let per = per.trim_end_matches('_').to_owned();
        if tokens.contains(&per) {
            String::new()
        } else {
            per
        }
    };
    let main = if per.is_empty() {
        main
    } else {
        main.trim_end_matches('_').to_owned()
    };
    tokens.extend([main, per].into_iter().filter(|s| !s.is_empty()));
    if counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let name = tokens.join("_");
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

/// `buildUnitSuffixes`: the unit before and after a `/`, each mapped to
/// its word; annotations in braces (`{request}`) say nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let lookup = |table: &[(&str, &str)], unit: &str| {
        table
            .iter()
            .find(|(otlp, _)| *otlp == unit)
            .map_or(unit.to_owned(), |(_, word)| (*word).to_owned())
    };
    let plain = |part: &str| !part.is_empty() && !part.contains(['{', '}']);
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let (main, per) = (main.trim(), per.trim());
    let main = if plain(main) {
        lookup(UNITS, main)
    } else {
        String::new()
    };
    let per = if plain(per) {
        format!("per_{}", lookup(PER_UNITS, per))
    } else {
        String::new()
    };
    (main, per)
}

/// `cleanUpUnit`: invalid characters become `_`, runs of `_` one, and a
/// leading `_` goes.
fn clean(unit: &str) -> String {
    let mut out = String::new();
    for c in unit.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_start_matches('_').to_owned()
}

/// Words of PromQL that are not metric names: aggregations and their
/// modifiers, set and vector-matching operators, and the special numbers.
const KEYWORDS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Modifiers followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects: every bare identifier that is not a
/// function, a keyword, a label (inside `{}` or a `by (...)` list), a
/// duration (inside `[]`), a string or a Grafana `$variable`.
pub fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut braces = 0usize;
    let mut labels_next = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if c == '[' {
            i = chars[i..]
                .iter()
                .position(|&c| c == ']')
                .map_or(chars.len(), |end| i + end + 1);
        } else if c == '{' {
            braces += 1;
            i += 1;
        } else if c == '}' {
            braces = braces.saturating_sub(1);
            i += 1;
        } else if c == '(' && labels_next {
            labels_next = false;
            i = chars[i..]
                .iter()
                .position(|&c| c == ')')
                .map_or(chars.len(), |end| i + end + 1);
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable, or a number such as 0.99 or 1e3.
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if braces > 0 {
                continue;
            }
            if LABEL_LISTS.contains(&word.as_str()) {
                labels_next = next == Some(&'(');
            } else if next != Some(&'(') && !KEYWORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The index just past the string that opens at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' && quote != '`' {
            2
        } else {
            1
        };
    }
    i + 1
}

/// The metric names a Grafana Prometheus variable query selects:
/// `label_values(metric{...}, label)` names one, `label_values(label)` none.
pub fn variable_metric_names(query: &str) -> Vec<String> {
    let query = query.trim();
    match query
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        Some(arguments) => match arguments.rsplit_once(',') {
            Some((selector, _label)) => metric_names(selector),
            None => Vec::new(),
        },
        None => metric_names(query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_otlp_receivers_rules() {
        // Examples from otlptranslator's own tests and the OTel spec: name,
        // unit, counter, gauge, then what the receiver calls it.
        let cases = [
            (
                "http.server.duration",
                "s",
                false,
                false,
                "http_server_duration_seconds",
            ),
            (
                "thespian.failures",
                "{request}",
                true,
                false,
                "thespian_failures_total",
            ),
            (
                "rpc.server.active_requests",
                "{request}",
                false,
                false,
                "rpc_server_active_requests",
            ),
            (
                "system.network.io",
                "By/s",
                true,
                false,
                "system_network_io_bytes_per_second_total",
            ),
            ("cpu.utilization", "1", false, true, "cpu_utilization_ratio"),
            ("requests.total", "", true, false, "requests_total"),
            ("latency_seconds", "s", false, false, "latency_seconds"),
            ("2xx.count", "", true, false, "_2xx_count_total"),
        ];
        for (name, unit, counter, gauge, expected) in cases {
            assert_eq!(
                normalized_name(name, unit, counter, gauge),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn a_query_names_its_metrics_and_not_its_functions_labels_or_durations() {
        let expr = r#"histogram_quantile(0.99, sum by (le, service) (rate(traces_spanmetrics_latency_bucket{service=~"$service", x="a{b}"}[$__rate_interval] offset 5m)))"#;
        assert_eq!(metric_names(expr), ["traces_spanmetrics_latency_bucket"]);
        let expr = r#"1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) / on (instance) group_left (cpu) node_load1 and up"#;
        assert_eq!(
            metric_names(expr),
            ["node_cpu_seconds_total", "node_load1", "up"]
        );
        assert_eq!(
            variable_metric_names("label_values(traces_spanmetrics_calls_total, service)"),
            ["traces_spanmetrics_calls_total"]
        );
        assert!(variable_metric_names("label_values(service_name)").is_empty());
    }
}
