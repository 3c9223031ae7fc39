//! The resource every exported span, log record and metric carries, saying
//! which instance made it: `service.name` from the instance's name, and any
//! extra attributes from `OTEL_RESOURCE_ATTRIBUTES`.

use std::{convert::Infallible, str::FromStr};

use opentelemetry::KeyValue;
use opentelemetry_sdk::{Resource, resource::TelemetryResourceDetector};

/// Extra resource attributes, parsed from the standard
/// `key=value,key=value` list, so deployments can label an instance (its
/// pod, its environment) without Thespian knowing the labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceAttributes(Vec<(String, String)>);

impl FromStr for ResourceAttributes {
    type Err = Infallible;

    /// Parses the list as the OpenTelemetry specification writes it, a W3C
    /// Baggage list without properties: keys and values are trimmed, and
    /// values are percent-decoded. An entry without `=` is skipped, as the
    /// Rust SDK has always skipped it, rather than failing the instance.
    fn from_str(list: &str) -> Result<ResourceAttributes, Infallible> {
        Ok(ResourceAttributes(
            entries(list)
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        ))
    }
}

/// The entries of a `key=value,key=value` list, as the OpenTelemetry
/// specification writes its list variables (`OTEL_RESOURCE_ATTRIBUTES`,
/// `OTEL_EXPORTER_OTLP_HEADERS`): a W3C Baggage list without properties.
/// Keys and values are trimmed, and values percent-decoded; bytes that do
/// not make UTF-8 become U+FFFD, as Baggage requires, and a `%` not followed
/// by two hex digits is kept as it is. An entry without `=` is skipped.
pub(super) fn entries(list: &str) -> impl Iterator<Item = (&str, String)> {
    list.split_terminator(',').filter_map(|entry| {
        let (key, value) = entry.split_once('=')?;
        let value = percent_encoding::percent_decode_str(value.trim()).decode_utf8_lossy();
        Some((key.trim(), value.into_owned()))
    })
}

impl std::fmt::Display for ResourceAttributes {
    /// Writes the list back in the form it is read from, each value
    /// percent-encoded where it must be, so that `thespian up` can hand
    /// its own attributes on to its instances with theirs added.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (key, value)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{key}=")?;
            for byte in value.bytes() {
                if byte.is_ascii_graphic() && !matches!(byte, b',' | b'=' | b'%' | b';') {
                    write!(f, "{}", char::from(byte))?;
                } else {
                    write!(f, "%{byte:02X}")?;
                }
            }
        }
        Ok(())
    }
}

/// The resource of an instance named `service_name`: the SDK's
/// `telemetry.sdk.*` attributes, then `attributes`, then `service.name`,
/// each overriding the one before, so the instance's name wins over a
/// `service.name` among the attributes.
pub fn resource(service_name: &str, attributes: &ResourceAttributes) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_attributes(
            attributes
                .0
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .with_service_name(service_name.to_owned())
        .build()
}

#[cfg(test)]
mod tests {
    use opentelemetry::{Key, Value};

    use super::{ResourceAttributes, resource};

    fn attribute(resource: &opentelemetry_sdk::Resource, key: &'static str) -> Option<String> {
        resource
            .get(&Key::from_static_str(key))
            .map(|v| v.to_string())
    }

    #[test]
    fn attributes_are_trimmed_and_their_values_percent_decoded() {
        let attributes: ResourceAttributes =
            " team = payments ,note=a%20b%2Cc%3Dd,check=%E2%9C%93,bad=%FF!,odd=50%,hex=%zz"
                .parse()
                .unwrap();
        assert_eq!(
            attributes.0,
            [
                ("team", "payments"),
                ("note", "a b,c=d"),
                ("check", "✓"),
                ("bad", "\u{FFFD}!"),
                ("odd", "50%"),
                ("hex", "%zz"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn attributes_written_out_read_back_the_same() {
        let attributes: ResourceAttributes = "team=payments,note=a%20b%2Cc%3Dd%25,check=%E2%9C%93"
            .parse()
            .unwrap();
        assert_eq!(
            attributes.to_string(),
            "team=payments,note=a%20b%2Cc%3Dd%25,check=%E2%9C%93"
        );
        assert_eq!(attributes.to_string().parse(), Ok(attributes));
    }

    #[test]
    fn entries_without_a_value_are_skipped() {
        let attributes: ResourceAttributes = "lonely,,a=1,".parse().unwrap();
        assert_eq!(attributes.0, [("a".to_owned(), "1".to_owned())]);
        assert_eq!("".parse::<ResourceAttributes>().unwrap().0, []);
    }

    #[test]
    fn the_instance_name_wins_over_a_service_name_among_the_attributes() {
        let attributes = "service.name=impostor,deployment.environment.name=staging"
            .parse()
            .unwrap();
        let resource = resource("orders", &attributes);
        assert_eq!(
            attribute(&resource, "service.name").as_deref(),
            Some("orders")
        );
        assert_eq!(
            attribute(&resource, "deployment.environment.name").as_deref(),
            Some("staging")
        );
        assert_eq!(
            resource.get(&Key::from_static_str("telemetry.sdk.language")),
            Some(Value::from("rust"))
        );
    }
}
