//! Attributes as read and as drawn: every shape, every bound, and draws
//! from a fixed seed that follow the weights and ranges they were given.

use opentelemetry::{KeyValue, Value};
use rand::{SeedableRng, rngs::StdRng};
use serde_json::json;

use super::*;

fn read(value: serde_json::Value) -> Result<Attributes, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn draw_all(attributes: &Attributes, rng: &mut StdRng) -> Vec<KeyValue> {
    let mut drawn = Vec::new();
    attributes.draw_into(rng, &mut drawn);
    drawn
}

/// The values `attributes`' only attribute takes over `draws` draws.
fn values(attributes: &Attributes, draws: usize) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(14);
    (0..draws)
        .map(|_| draw_all(attributes, &mut rng).remove(0).value)
        .collect()
}

#[test]
fn fixed_values_keep_their_types_in_key_order() {
    let attributes = read(json!({
        "customer.tier": "gold", "cart.items": 3, "cart.total": 12.5, "customer.new": true
    }))
    .unwrap();
    let drawn = draw_all(&attributes, &mut StdRng::seed_from_u64(1));
    assert_eq!(
        drawn,
        [
            KeyValue::new("cart.items", 3),
            KeyValue::new("cart.total", 12.5),
            KeyValue::new("customer.new", true),
            KeyValue::new("customer.tier", "gold"),
        ]
    );
}

#[test]
fn the_order_attributes_are_written_in_does_not_change_what_they_draw() {
    let tier = json!({"one_of": [{"value": "gold"}, {"value": "silver"}, {"value": "free"}]});
    let items = json!({"int_range": [1, 1_000_000]});
    let written = |first: (&str, &serde_json::Value), second: (&str, &serde_json::Value)| {
        let mut object = serde_json::Map::new();
        object.insert(first.0.to_owned(), first.1.clone());
        object.insert(second.0.to_owned(), second.1.clone());
        let attributes = read(serde_json::Value::Object(object)).unwrap();
        draw_all(&attributes, &mut StdRng::seed_from_u64(7))
    };
    assert_eq!(
        written(("tier", &tier), ("items", &items)),
        written(("items", &items), ("tier", &tier))
    );
}

#[test]
fn no_attributes_hold_nothing() {
    let attributes = read(json!({})).unwrap();
    assert!(attributes.is_empty());
    assert!(Attributes::default().is_empty());
    assert!(draw_all(&attributes, &mut StdRng::seed_from_u64(1)).is_empty());
}

#[test]
fn one_of_follows_its_weights() {
    let attributes = read(json!({"customer.tier": {"one_of": [
        {"value": "gold", "weight": 1},
        {"value": "free", "weight": 3.0},
        {"value": "never", "weight": 0}
    ]}}))
    .unwrap();
    let drawn = values(&attributes, 4000);
    let count = |tier: &str| drawn.iter().filter(|v| v.as_str() == tier).count();
    // 1 in 4 expected: 1000, with a standard deviation of about 27.
    assert!((900..1100).contains(&count("gold")), "{}", count("gold"));
    assert_eq!(count("gold") + count("free"), 4000);
    assert_eq!(count("never"), 0);
}

#[test]
fn one_of_weights_default_to_equal() {
    let attributes =
        read(json!({"region": {"one_of": [{"value": "eu"}, {"value": "us"}]}})).unwrap();
    let drawn = values(&attributes, 2000);
    let eu = drawn.iter().filter(|v| v.as_str() == "eu").count();
    assert!((900..1100).contains(&eu), "{eu}");
}

#[test]
fn int_range_includes_both_ends_and_nothing_else() {
    let attributes = read(json!({"cart.items": {"int_range": [1, 3]}})).unwrap();
    let drawn: Vec<i64> = values(&attributes, 1000)
        .into_iter()
        .map(|v| match v {
            Value::I64(n) => n,
            other => panic!("an int_range draws integers, not {other:?}"),
        })
        .collect();
    assert!(drawn.iter().all(|n| (1..=3).contains(n)));
    for n in 1..=3 {
        assert!(drawn.contains(&n), "{n} was never drawn");
    }
    let single = read(json!({"n": {"int_range": [-5, -5]}})).unwrap();
    assert!(values(&single, 10).iter().all(|v| *v == Value::I64(-5)));
}

#[test]
fn bad_attributes_are_refused_with_a_reason() {
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    let many: serde_json::Map<_, _> = (0..=MAX_ATTRIBUTES)
        .map(|i| (format!("k{i}"), json!(i)))
        .collect();
    let choices: Vec<_> = (0..=MAX_CHOICES).map(|i| json!({"value": i})).collect();
    for (value, reason) in [
        (json!({ long: 1 }), "at most 128 bytes"),
        (json!({"": 1}), "must not be empty"),
        (
            json!({"k": "v".repeat(MAX_VALUE_BYTES + 1)}),
            "at most 256 bytes",
        ),
        (serde_json::Value::Object(many), "at most 32 attributes"),
        (json!({"k": {"one_of": choices}}), "1 to 64 choices"),
        (json!({"k": {"one_of": []}}), "1 to 64 choices"),
        (
            json!({"k": {"one_of": [{"value": 1, "weight": 0}]}}),
            "weight above 0",
        ),
        (
            json!({"k": {"one_of": [{"value": 1, "weight": -1}]}}),
            "a weight",
        ),
        (
            json!({"k": {"one_of": [{"value": {"one_of": []}}]}}),
            "a string, a number or a boolean",
        ),
        (json!({"k": {"int_range": [3, 1]}}), "3 is above 1"),
        (
            json!({"k": {"int_range": [1, 2], "one_of": [{"value": 1}]}}),
            "exactly one",
        ),
        (json!({"k": {}}), "exactly one"),
        (json!({"k": {"ranges": [1, 2]}}), "unknown field `ranges`"),
        (
            json!({"k": null}),
            "a string, a number or a boolean, or an object",
        ),
        (
            json!({"k": [1]}),
            "a string, a number or a boolean, or an object",
        ),
        (json!(["k"]), "an object of attribute keys"),
    ] {
        let error = read(value.clone()).expect_err(&format!("{value} should be refused"));
        assert!(error.contains(reason), "{value}: {error}");
    }
}

#[test]
fn a_fixed_attribute_checks_its_key() {
    let value: AttributeValue = serde_json::from_value(json!("gold")).unwrap();
    assert_eq!(
        Attribute::fixed("tier", value.clone()).unwrap().key(),
        "tier"
    );
    assert!(Attribute::fixed(" ", value.clone()).is_err());
    assert!(Attribute::fixed(&"k".repeat(MAX_KEY_BYTES + 1), value).is_err());
    assert!(serde_json::from_value::<AttributeValue>(json!({"int_range": [1, 2]})).is_err());
}

#[test]
fn a_script_map_is_read_by_the_same_parser() {
    let engine = rhai::Engine::new();
    let map: rhai::Dynamic = engine
        .eval(r#"#{ tier: #{ one_of: [#{ value: "gold", weight: 1 }, #{ value: "free", weight: 2.5 }] }, items: #{ int_range: [1, 2] }, vip: true }"#)
        .unwrap();
    let attributes: Attributes = rhai::serde::from_dynamic(&map).unwrap();
    let keys: Vec<&str> = attributes.iter().map(Attribute::key).collect();
    // Rhai's maps are ordered by key.
    assert_eq!(keys, ["items", "tier", "vip"]);
}
