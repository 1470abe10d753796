//! Unit tests of the OpenAPI document.

use super::*;

#[test]
fn placeholders_are_filled_as_whole_strings_only() {
    let texts = vec!["a \"quoted\" text".to_string(), "key".to_string()];
    let p = |i: usize| format!("{MARK}{i}");
    let doc = serde_json::json!({
        p(1): p(0),
        "user": format!("x\"{}", p(0)),
        "n": 9007199254740991.0_f64,
        "tags": [p(1), "plain"],
    })
    .to_string();
    let filled: Json = serde_json::from_str(&fill(&doc, &texts)).unwrap();
    assert_eq!(filled["key"], "a \"quoted\" text");
    assert_eq!(
        filled["user"],
        format!("x\"{}", p(0)),
        "user text is left alone"
    );
    assert_eq!(filled["tags"], serde_json::json!(["key", "plain"]));
    assert!(fill(&doc, &texts).contains("9007199254740991.0"));
}
