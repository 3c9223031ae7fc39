//! `baggage` and `header`: what a script reads of the request it directs.

use opentelemetry::{Context, KeyValue, baggage::BaggageExt as _};
use tonic::metadata::MetadataMap;

use super::*;
use crate::relay::Headers;

/// The sleeps a script that names one after each value it reads records,
/// directed in `cx`.
fn read_in(cx: Context) -> Vec<String> {
    let script = script(
        r#"
        for value in [baggage("tenant"), header("X-Tenant"), header("x-missing"),
                      baggage("missing"), header("blob-bin")] {
            sleep(if value == () { "absent" } else { value }, 1);
        }
        "#,
    );
    let _inside = cx.attach();
    steps(&script).iter().map(|step| sleep_ms(step).0).collect()
}

#[test]
fn a_script_reads_baggage_and_headers_or_unit_when_absent() {
    let mut metadata = MetadataMap::new();
    metadata.insert("x-tenant", "globex".parse().unwrap());
    metadata.insert_bin(
        "blob-bin",
        tonic::metadata::MetadataValue::from_bytes(b"\x00\x01"),
    );
    let cx = Context::new()
        .with_baggage([KeyValue::new("tenant", "acme")])
        .with_value(Headers::new(metadata));
    assert_eq!(
        read_in(cx),
        ["acme", "globex", "absent", "absent", "absent"]
    );
}

#[test]
fn outside_a_request_everything_reads_as_absent() {
    assert_eq!(read_in(Context::new()), ["absent"; 5]);
}
