//! Writes a JSON value as block-style YAML that reads well and lints clean:
//! keys in their insertion order, plain scalars where YAML 1.1 and 1.2
//! both read them back as the same string, literal blocks for text with
//! line breaks, and folded blocks for long one-line text such as a
//! service's `CONFIG_JSON`, so that no line outgrows `yamllint`'s limit.

use serde_json::{Map, Value};

/// The width long one-line strings are folded to, indentation aside.
const FOLD_WIDTH: usize = 90;

/// `value`, a mapping at the top, as YAML lines, with a blank line between
/// its top-level sections.
pub(super) fn to_yaml(value: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (i, (key, child)) in value.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        entry(&mut out, 0, key, child);
    }
    out
}

/// `key: value` at `indent`, the value inline when it is a scalar.
fn entry(out: &mut String, indent: usize, key: &str, value: &Value) {
    pad(out, indent);
    out.push_str(&scalar_text(key));
    out.push(':');
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            mapping(out, indent + 2, map);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            sequence(out, indent + 2, items);
        }
        _ => {
            out.push(' ');
            inline(out, indent + 2, value);
        }
    }
}

fn mapping(out: &mut String, indent: usize, map: &Map<String, Value>) {
    for (key, value) in map {
        entry(out, indent, key, value);
    }
}

/// Each item as `- item`; a mapping's first key shares the dash's line.
fn sequence(out: &mut String, indent: usize, items: &[Value]) {
    for item in items {
        pad(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => {
                let mut entries = map.iter();
                if let Some((key, value)) = entries.next() {
                    let mut first = String::new();
                    entry(&mut first, indent + 2, key, value);
                    out.push_str(&first[indent + 2..]);
                }
                for (key, value) in entries {
                    entry(out, indent + 2, key, value);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.pop();
                out.push('\n');
                sequence(out, indent + 2, inner);
            }
            _ => inline(out, indent + 2, item),
        }
    }
}

/// A scalar or empty collection after `key: ` or `- `, ending its line;
/// block scalars continue at `indent`.
fn inline(out: &mut String, indent: usize, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => string(out, indent, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
    out.push('\n');
}

fn string(out: &mut String, indent: usize, s: &str) {
    if literal_fits(s) {
        out.push_str(if s.ends_with('\n') { "|" } else { "|-" });
        for line in s.strip_suffix('\n').unwrap_or(s).split('\n') {
            out.push('\n');
            if !line.is_empty() {
                pad(out, indent);
                out.push_str(line);
            }
        }
    } else if let Some(lines) = folded(s) {
        out.push_str(">-");
        for line in lines {
            out.push('\n');
            pad(out, indent);
            out.push_str(line);
        }
    } else {
        out.push_str(&scalar_text(s));
    }
}

/// Whether `s` reads back unchanged as a literal block: it has line breaks,
/// no other control characters, no first line indented (that would need an
/// indentation indicator), no line with trailing spaces, and at most one
/// line break at the end (more would need the keep indicator, which would
/// also keep the blank line after it).
fn literal_fits(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && !s.chars().any(|c| c.is_control() && c != '\n')
        && s.split('\n').all(|line| !line.ends_with([' ', '\t']))
}

/// `s` cut at single spaces into lines of about [`FOLD_WIDTH`], which a
/// folded block joins back with one space each: `None` when `s` is short,
/// cannot be cut, or would not read back the same.
fn folded(s: &str) -> Option<Vec<&str>> {
    if s.chars().count() <= FOLD_WIDTH
        || s.starts_with(' ')
        || s.ends_with(' ')
        || s.chars().any(char::is_control)
    {
        return None;
    }
    let bytes = s.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut last_cut = None;
    for (i, &b) in bytes.iter().enumerate() {
        // A cut replaces one space between two other characters, so that no
        // line starts or ends with a space (which would not fold back).
        if b == b' ' && i > start && bytes[i - 1] != b' ' && bytes.get(i + 1) != Some(&b' ') {
            if i - start > FOLD_WIDTH
                && let Some(cut) = last_cut
            {
                lines.push(&s[start..cut]);
                start = cut + 1;
            }
            last_cut = Some(i).filter(|&i| i > start);
        }
    }
    if s.len() - start > FOLD_WIDTH
        && let Some(cut) = last_cut
    {
        lines.push(&s[start..cut]);
        start = cut + 1;
    }
    lines.push(&s[start..]);
    (lines.len() > 1).then_some(lines)
}

/// `s` as a one-line scalar: plain when safe, else double-quoted (a JSON
/// string is a valid YAML double-quoted scalar).
fn scalar_text(s: &str) -> String {
    if plain_fits(s) {
        s.to_owned()
    } else {
        Value::String(s.to_owned()).to_string()
    }
}

/// Whether `s` reads back as this same string when written plain, in
/// YAML 1.1 (PyYAML, cfn-lint, yamllint) as in 1.2.
fn plain_fits(s: &str) -> bool {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "=",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/' || first == '$')
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " -_./:=,@+*()${}".contains(c))
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What a YAML reader makes of `yaml`.
    fn read(yaml: &str) -> Value {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn round_trip(value: Value) {
        let Value::Object(map) = &value else {
            panic!("a mapping")
        };
        let yaml = to_yaml(map);
        assert_eq!(read(&yaml), value, "{yaml}");
        for line in yaml.lines() {
            assert!(!line.ends_with(' '), "trailing space: {line:?}");
        }
    }

    #[test]
    fn scalars_that_look_like_other_types_stay_strings() {
        round_trip(json!({
            "a": "2010-09-09", "b": "256", "c": "yes", "Yes": "No", "d": "", "e": "on",
            "f": "1:30", "g": "-1", "h": ".5", "i": "null", "j": "a: b", "k": "x #y",
            "l": "${AWS::StackName}-orders", "m": "http://orders:6379", "n": "'q'",
            "o": 6379, "p": true, "q": null, "r": [], "s": {}, "t": "{\"a\": 1}",
        }));
    }

    #[test]
    fn nested_lists_and_maps_read_back() {
        round_trip(json!({
            "Resources": {"X": {"Type": "AWS::ECS::Service", "Properties": {
                "List": [{"Name": "A", "Value": "b"}, {"Ref": "X"}, ["x", ["y"]], 3],
                "Fn::If": ["C", {"Ref": "AWS::NoValue"}, [{"a": {"b": [1]}}]],
            }}}
        }));
    }

    #[test]
    fn text_with_line_breaks_is_a_literal_block() {
        let text = "receivers:\n  otlp:\n\n    protocols: {}\n";
        let yaml = to_yaml(json!({"Config": text}).as_object().unwrap());
        assert!(yaml.starts_with("Config: |\n  receivers:\n"), "{yaml}");
        for text in [
            text,
            "a\nb",
            "a\nb\n\n",
            " lead\nx",
            "trail \nx",
            "tab\tx\ny",
        ] {
            round_trip(json!({"Config": text, "List": [text]}));
        }
    }

    #[test]
    fn long_lines_fold_at_single_spaces_and_read_back_the_same() {
        let script = std::fs::read_to_string("scripts/storefront.rhai").unwrap();
        let config = json!({"a": {"script_source": script}}).to_string();
        let spaced = config.replace("\":", "\": ");
        let folds = [
            spaced,
            "word ".repeat(60).trim_end().to_owned(),
            "ab  cd ef   gh ".repeat(30).trim().to_owned(),
            format!("{} {} z", "x".repeat(200), "y".repeat(200)),
        ];
        for text in &folds {
            let yaml = to_yaml(json!({"Value": text}).as_object().unwrap());
            assert!(yaml.starts_with("Value: >-\n"), "{yaml}");
            assert_eq!(read(&yaml)["Value"], *text, "{yaml}");
            let longest_word = text.split(' ').map(str::len).max().unwrap();
            for line in yaml.lines() {
                assert!(
                    line.len() <= (FOLD_WIDTH + 20).max(longest_word + 2),
                    "{line}"
                );
                assert!(!line.ends_with(' '), "trailing space: {line:?}");
            }
        }
        // Without a single space to cut at, a long line stays one line.
        for text in ["x".repeat(300), "a  b   c    ".repeat(30).trim().to_owned()] {
            round_trip(json!({"Value": text}));
        }
    }
}
