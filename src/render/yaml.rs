//! Writing JSON values out as block-style YAML, in the order their keys
//! were inserted, so that rendered files read like hand-written ones and
//! come out the same every time.
//!
//! serde-saphyr does the writing: it quotes strings that would read back
//! as a number, a boolean or null, writes text of several lines as a
//! literal block and folds long lines at blanks (a long word stays on one
//! line, which yamllint's `line-length` allows). This module only picks
//! its options, and double-quotes text whose block scalar would end a
//! line in a blank or a file in empty lines, which yamllint rejects. Such
//! a quoted string stays on one line (serde-saphyr does not fold quoted
//! scalars), so a long one can overrun yamllint's `line-length`.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// `documents` as one YAML stream, each after a `---` but the first.
pub(super) fn documents(documents: &[Value]) -> String {
    let documents: Vec<_> = documents.iter().map(Yaml).collect();
    serde_saphyr::to_string_multiple_with_options(&documents, options())
        .expect("a JSON value always serializes as YAML")
}

/// `value` as one YAML document.
pub(super) fn to_string(value: &Value) -> String {
    serde_saphyr::to_string_with_options(&Yaml(value), options())
        .expect("a JSON value always serializes as YAML")
}

/// Sequences under a key indented, as yamllint's default
/// `indent-sequences` wants; every other option at serde-saphyr's default.
fn options() -> serde_saphyr::SerializerOptions {
    serde_saphyr::ser_options! {
        compact_list_indent: false,
    }
}

/// A JSON value serialized as serde_json does, but with text whose block
/// scalar yamllint would reject double-quoted instead.
struct Yaml<'a>(&'a Value);

impl Serialize for Yaml<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(text) if quote_rather_than_block(text) || numeric_with_colons(text) => {
                serde_saphyr::DoubleQuoted(text).serialize(serializer)
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Yaml(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, &Yaml(value))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Whether `text` is digits and dots joined by colons, as a port mapping
/// such as `127.0.0.1:6380:6379` is: YAML 1.1 readers may take colon-joined
/// digits for a base-60 number, so Compose's own documentation (and its
/// linters) want them quoted.
fn numeric_with_colons(text: &str) -> bool {
    text.contains(':')
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b':')
}

/// Whether a block scalar of `text` would trip yamllint: a literal block
/// ending a line in a blank or the file in empty lines (text ending in
/// several line breaks, or made only of them), or a folded line that might
/// end in a blank (folding can break inside a run of blanks).
fn quote_rather_than_block(text: &str) -> bool {
    let trails = |line: &str| line.ends_with([' ', '\t']);
    if text.contains('\n') {
        let body = text.strip_suffix('\n').unwrap_or(text);
        body.trim().is_empty() || body.ends_with('\n') || body.split('\n').any(trails)
    } else {
        trails(text) || text.contains("  ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// `text` as the value of a key, and that it reads back as itself.
    fn written(text: &str) -> String {
        let value = json!({ "k": text });
        let yaml = to_string(&value);
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, value, "{yaml}");
        yaml.strip_prefix("k: ").unwrap().trim_end().to_owned()
    }

    #[test]
    fn quotes_port_mappings_as_compose_wants() {
        assert_eq!(written("127.0.0.1:6380:6379"), r#""127.0.0.1:6380:6379""#);
        assert_eq!(written("6379"), r#""6379""#);
        assert_eq!(written("http://frontend:6379"), "http://frontend:6379");
    }

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
            "22:22",
        ] {
            let written = written(text);
            assert!(
                written.starts_with(['"', '\'', '|', '>']),
                "{text:?} was written {written}"
            );
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
            assert_eq!(written(text), text);
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
        for tricky in [" leading\nx", "x\n", "tab\there\nx"] {
            assert!(written(tricky).starts_with('|'), "{tricky:?}");
        }
        // A block would end a line in a blank, which yamllint rejects.
        for trailing in [
            "trailing \nx",
            "tab\t\nx",
            "two  blanks",
            "\n",
            "\n\n",
            "x\n\n",
        ] {
            assert!(written(trailing).starts_with('"'), "{trailing:?}");
        }
    }

    /// yamllint's `line-length` lets a line run over only when it is one
    /// word, which a long value without blanks is.
    #[test]
    fn keeps_long_strings_within_yamllint_line_length_and_reads_them_back() {
        let long = "service.instance.id=$(POD_NAME),k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.version=1.2.3";
        let spaced = format!("{}\"quoted\" {}", "word ".repeat(40), "x".repeat(150));
        let value =
            json!({"a": {"b": {"c": {"env": [{"name": "A", "value": long}], "b": spaced}}}});
        let text = to_string(&value);
        assert!(text.lines().count() > 6, "{text}");
        for line in text.lines() {
            let words = line.trim_start().trim_start_matches("- ");
            assert!(line.len() <= 120 || !words.contains(' '), "{line}");
        }
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn separates_documents() {
        let text = documents(&[json!({"a": 1}), json!({"b": "x"})]);
        assert_eq!(text, "a: 1\n---\nb: x\n");
    }
}
