//! Writing JSON values out as block-style YAML, in the order their keys
//! were inserted, so that rendered files read like hand-written ones and
//! come out the same every time.
//!
//! Strings stay plain where YAML reads them back as the same string, and
//! are double-quoted (JSON's escapes are YAML's) where a plain scalar would
//! turn into a number, a boolean or null, or would not parse. Text of more
//! than one line is a literal block.

use serde_json::Value;

/// `documents` as one YAML stream, each after a `---` but the first.
pub(super) fn documents(documents: &[Value]) -> String {
    let mut out = String::new();
    for (i, document) in documents.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_string(document));
    }
    out
}

/// `value` as one YAML document.
pub(super) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        scalar => {
            out.push_str(&inline(scalar, 0));
            out.push('\n');
        }
    }
    out
}

/// A mapping whose keys start at column `indent`.
fn mapping(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a sequence item follows its "- ".
        if i > 0 || out.is_empty() || out.ends_with('\n') {
            pad(out, indent);
        }
        out.push_str(&string(key, indent));
        out.push(':');
        entry(out, value, indent, indent + 2);
    }
}

/// A sequence whose dashes start at column `indent`.
fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push(' ');
                mapping(out, map, indent + 2);
            }
            _ => entry(out, item, indent, indent + 2),
        }
    }
}

/// What follows a key's colon or a sequence's dash: a scalar on the same
/// line, or a nested collection on the lines after it. Sequences under a
/// key are indented, as yamllint's default `indent-sequences` wants.
fn entry(out: &mut String, value: &Value, indent: usize, nested: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, map, nested);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, items, nested);
        }
        scalar => {
            out.push(' ');
            out.push_str(&inline(scalar, indent));
            out.push('\n');
        }
    }
}

/// A scalar, or an empty collection, written on one line (a literal
/// block runs on below it, indented past `indent`).
fn inline(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => string(text, indent),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// A string: plain when that reads back as the same string, a literal
/// block when it has several lines, double-quoted otherwise.
fn string(text: &str, indent: usize) -> String {
    if text.contains('\n') && literal_safe(text) {
        let chomp = if text.ends_with('\n') { "" } else { "-" };
        let mut block = format!("|{chomp}");
        for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            block.push('\n');
            if !line.is_empty() {
                block.push_str(&" ".repeat(indent + 2));
                block.push_str(line);
            }
        }
        return block;
    }
    if text.chars().count() > FOLD_WIDTH {
        folded(text, indent)
    } else if plain_safe(text) {
        text.to_owned()
    } else {
        serde_json::to_string(text).expect("a string serializes")
    }
}

/// The longest string written on one line; longer ones are folded, so
/// that lines stay within yamllint's limit.
const FOLD_WIDTH: usize = 80;

/// A long string double-quoted over several lines, each but the last
/// ending in an escaped line break, which YAML drops: the lines join into
/// the string as it was. A line never starts with a blank, which YAML
/// would take for indentation.
fn folded(text: &str, indent: usize) -> String {
    let mut out = String::from("\"");
    let mut line = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let escaped = serde_json::to_string(&c.to_string()).expect("a string serializes");
        let escaped = &escaped[1..escaped.len() - 1];
        out.push_str(escaped);
        line += escaped.len();
        let next_is_blank = chars.peek().is_some_and(|c| *c == ' ' || *c == '\t');
        if line >= FOLD_WIDTH && chars.peek().is_some() && !next_is_blank {
            out.push_str("\\\n");
            out.push_str(&" ".repeat(indent + 2));
            line = 0;
        }
    }
    out.push('"');
    out
}

/// Whether `text` survives as a literal block: something besides line
/// breaks, no trailing blanks (which yamllint flags), no tabs or control
/// characters, and no leading blank on its first line (which would need an
/// indentation indicator).
fn literal_safe(text: &str) -> bool {
    let body = text.strip_suffix('\n').unwrap_or(text);
    !body.trim().is_empty()
        && !body.starts_with(' ')
        && !body.ends_with('\n')
        && body
            .split('\n')
            .all(|line| !line.ends_with(' ') && !line.chars().any(|c| c.is_control()))
}

/// Whether `text` reads back as itself when written plain: a conservative
/// set of characters, and nothing YAML 1.1 or 1.2 would take for a number,
/// a boolean or null.
fn plain_safe(text: &str) -> bool {
    let mut chars = text.chars();
    let first_ok = match (chars.next(), chars.next()) {
        // `--rate`, not a sequence's dash.
        (Some('-'), Some(second)) => second == '-' || second.is_ascii_alphabetic(),
        (Some(first), _) => first.is_ascii_alphanumeric() || "/_.$(".contains(first),
        (None, _) => false,
    };
    let chars_ok = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " /_.,=:@$()+-".contains(c));
    let punctuation_ok = !text.contains(": ")
        && !text.ends_with(':')
        && !text.ends_with(' ')
        && !text.contains(" #");
    first_ok && chars_ok && punctuation_ok && !looks_typed(text)
}

/// Whether a plain `text` would be read as something other than a string.
fn looks_typed(text: &str) -> bool {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "nan",
    ];
    let lower = text.to_ascii_lowercase();
    WORDS.contains(&lower.as_str())
        || [".inf", ".nan"].contains(&lower.trim_start_matches(['+', '-']))
        || text.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '+' || c == '-')
            && text
                .chars()
                .all(|c| c.is_ascii_hexdigit() || "+-._:xXoO".contains(c))
}

/// `indent` spaces.
fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nests_mappings_and_indents_sequences_under_keys() {
        let value = json!({
            "kind": "Deployment",
            "spec": {"replicas": 2, "args": ["serve"], "env": [{"name": "A", "value": "1"}]},
            "empty": {},
            "none": [],
        });
        assert_eq!(
            to_string(&value),
            "kind: Deployment\nspec:\n  replicas: 2\n  args:\n    - serve\n  env:\n    - name: A\n      value: \"1\"\nempty: {}\nnone: []\n"
        );
    }

    #[test]
    fn quotes_what_would_read_back_as_another_type_or_not_parse() {
        for text in [
            "true",
            "no",
            "On",
            "null",
            "~",
            "1",
            "1.10",
            "0x1f",
            "1e3",
            "-5",
            ".inf",
            "",
            "-",
            "-1",
            "\n",
            "\n\n",
            "a: b",
            "a #b",
            "*ref",
            "- x",
            "trailing ",
            "{x}",
            "'q'",
            "tab\there",
        ] {
            let written = string(text, 0);
            assert!(written.starts_with('"'), "{text:?} was written {written}");
            let back: String = serde_saphyr::from_str(&written).unwrap();
            assert_eq!(back, text);
        }
        for text in [
            "serve",
            "info",
            "--rate",
            "http://orders:6379",
            "/etc/thespian",
            "50m",
            "$(POD_NAME)",
        ] {
            assert_eq!(string(text, 0), text);
        }
    }

    #[test]
    fn writes_several_lines_as_a_literal_block_that_reads_back() {
        let value = json!({"data": {"config.yaml": "a: 1\n\nb:\n  - c\n"}, "x": ["one\ntwo"]});
        let text = to_string(&value);
        assert_eq!(
            text,
            "data:\n  config.yaml: |\n    a: 1\n\n    b:\n      - c\nx:\n  - |-\n    one\n    two\n"
        );
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn folds_long_strings_into_lines_that_join_back() {
        let long = "service.instance.id=$(POD_NAME),k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.version=1.2.3";
        let spaced = format!("{} \"quoted\"  {}", "word ".repeat(20), "x".repeat(90));
        let value = json!({"env": [{"name": "A", "value": long}], "b": spaced});
        let text = to_string(&value);
        assert!(text.lines().count() > 5, "{text}");
        assert!(
            text.lines().all(|line| line.len() <= FOLD_WIDTH + 20),
            "{text}"
        );
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn separates_documents() {
        let text = documents(&[json!({"a": 1}), json!({"b": "x"})]);
        assert_eq!(text, "a: 1\n---\nb: x\n");
    }
}
