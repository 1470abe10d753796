use super::*;
use poem_openapi::types::Type;
use poem_openapi::{Enum, Object};
use serde_json::json;

#[derive(Enum)]
#[oai(rename_all = "lowercase")]
enum Pay {
    Card,
    Cash,
}

#[derive(Object)]
struct Line {
    #[oai(validator(minimum(value = "1")))]
    qty: u32,
    sku: String,
}

#[derive(Object)]
struct Order {
    #[oai(validator(max_items = 3))]
    items: Vec<Line>,
    pay: Pay,
    #[oai(validator(max_length = 4, pattern = "^[0-9]*$"))]
    last4: Option<String>,
    #[oai(validator(maximum(value = "100", exclusive)))]
    discount: Option<f64>,
}

fn compiled<T: Type>() -> SchemaCheck {
    let mut registry = Registry::new();
    T::register(&mut registry);
    SchemaCheck::new(&T::schema_ref(), &registry).expect("the schema compiles")
}

fn mismatch(check: &SchemaCheck, v: serde_json::Value) -> (String, String) {
    check.check(&v).expect_err("a mismatch")
}

#[test]
fn a_valid_value_passes() {
    let c = compiled::<Order>();
    let ok = json!({"items": [{"qty": 2, "sku": "a"}], "pay": "card", "last4": "1234", "discount": 99.5});
    assert_eq!(c.check(&ok), Ok(()));
}

#[test]
fn mismatch_paths_name_nested_fields_and_items() {
    let c = compiled::<Order>();
    let cases = [
        (
            json!({"items": [{"qty": 1, "sku": "a"}, {"sku": "b"}], "pay": "card"}),
            ("items[1].qty", "missing required field"),
        ),
        (
            json!({"items": [{"qty": 0, "sku": "a"}], "pay": "card"}),
            ("items[0].qty", "must be at least 1"),
        ),
        (
            json!({"items": [{"qty": 1, "sku": 7}], "pay": "card"}),
            ("items[0].sku", "must be a string, not a number"),
        ),
        (json!({"pay": "card"}), ("items", "missing required field")),
        (
            json!({"items": {}, "pay": "card"}),
            ("items", "must be an array, not an object"),
        ),
        (
            json!({"items": [], "pay": "gold"}),
            ("pay", r#"must be one of "card", "cash""#),
        ),
        (
            json!({"items": [], "pay": null}),
            ("pay", "must be a string, not null"),
        ),
        (
            json!({"items": [], "pay": "card", "last4": "12345"}),
            ("last4", "must be at most 4 characters"),
        ),
        (
            json!({"items": [], "pay": "card", "last4": "12a4"}),
            ("last4", r#"must match the pattern "^[0-9]*$""#),
        ),
        (
            json!({"items": [], "pay": "card", "discount": 100}),
            ("discount", "must be below 100"),
        ),
        (
            json!({"items": [{"qty": 1, "sku": "a"}, {"qty": 1, "sku": "a"}, {"qty": 1, "sku": "a"}, {"qty": 1, "sku": "a"}], "pay": "card"}),
            ("items", "must have at most 3 items"),
        ),
        (json!([]), ("", "must be an object, not an array")),
    ];
    for (value, (field, message)) in cases {
        let got = mismatch(&c, value.clone());
        assert_eq!(got, (field.to_string(), message.to_string()), "{value}");
    }
}

#[test]
fn a_message_never_echoes_the_value() {
    let c = compiled::<Order>();
    let secret = "s3cr3t-value";
    for v in [
        json!({"items": [], "pay": secret}),
        json!({"items": [], "pay": "card", "last4": secret}),
        json!({"items": secret, "pay": "card"}),
    ] {
        let (_, message) = mismatch(&c, v);
        assert!(!message.contains(secret), "{message}");
    }
}

#[test]
fn openapi_dialect_is_translated_to_2020_12() {
    let names: BTreeMap<&str, String> = [("Line<u8>", "s0".to_string())].into();
    let mut v = json!({
        "type": "object",
        "properties": {
            "nullable": {"type": "string", "nullable": true, "enum": ["a"]},
            "line": {"$ref": "#/components/schemas/Line<u8>"},
            "low": {"type": "number", "minimum": 1, "exclusiveMinimum": true},
            "high": {"type": "number", "maximum": 9, "exclusiveMaximum": false},
            "any": {"allOf": [{"$ref": "#/components/schemas/Line<u8>"}], "nullable": true}
        },
        "example": {"nullable": true, "$ref": "data, not a schema"}
    });
    translate(&mut v, &names).unwrap();
    let p = &v["properties"];
    assert_eq!(p["nullable"]["type"], json!(["string", "null"]));
    assert_eq!(p["nullable"]["enum"], json!(["a", null]));
    assert_eq!(p["line"]["$ref"], "#/$defs/s0");
    assert_eq!(p["low"], json!({"type": "number", "exclusiveMinimum": 1}));
    assert_eq!(p["high"], json!({"type": "number", "maximum": 9}));
    assert_eq!(
        p["any"],
        json!({"anyOf": [{"allOf": [{"$ref": "#/$defs/s0"}]}, {"type": "null"}]})
    );
    assert_eq!(v["example"], json!({"nullable": true, "$ref": "data, not a schema"}));
    // A reference to a schema that is not registered is an error, not a pass.
    let mut dangling = json!({"$ref": "#/components/schemas/Missing"});
    assert!(translate(&mut dangling, &names).unwrap_err().contains("Missing"));
}

#[test]
fn an_any_of_mismatch_names_the_alternative_of_the_values_type() {
    let mut registry = Registry::new();
    Line::register(&mut registry);
    let schema = MetaSchemaRef::Inline(Box::new(MetaSchema {
        any_of: vec![Line::schema_ref(), MetaSchemaRef::Inline(Box::new(MetaSchema::new("string")))],
        ..MetaSchema::ANY
    }));
    let c = SchemaCheck::new(&schema, &registry).unwrap();
    assert_eq!(c.check(&json!("x")), Ok(()));
    assert_eq!(
        mismatch(&c, json!({"qty": 0, "sku": "a"})),
        ("qty".to_string(), "must be at least 1".to_string())
    );
    assert_eq!(
        mismatch(&c, json!(3)),
        (String::new(), "must be an object or a string, not a number".to_string())
    );
}
