//! Unit tests of the logging layer.

use super::*;

fn json(s: &str) -> String {
    let mut out = String::new();
    push_json_str(&mut out, s);
    out
}

#[test]
fn json_strings_match_serde_json() {
    for s in [
        "",
        "plain",
        "quote \" and \\ back",
        "tab\tnew\nline\r",
        "\u{1}\u{1f}",
        "unicode é ✓ 🚀",
        "a\"é\n",
    ] {
        assert_eq!(json(s), serde_json::to_string(s).unwrap(), "for {s:?}");
    }
}

#[test]
fn every_byte_at_every_offset_is_escaped_and_quoted_like_the_byte_wise_rule() {
    for len in [1, 7, 8, 9, 17] {
        for at in 0..len {
            for b in 0u8..=0x7f {
                let mut v = vec![b'a'; len];
                v[at] = b;
                let s = String::from_utf8(v).unwrap();
                assert_eq!(json(&s), serde_json::to_string(&s).unwrap(), "{s:?}");
                let mut text = String::new();
                push_text_str(&mut text, &s);
                let bare = !TEXT_QUOTE[b as usize];
                assert_eq!(text == s, bare, "{s:?} gave {text}");
            }
        }
    }
    let long = format!(
        "{}\u{e9}{}\"{}",
        "x".repeat(13),
        "y".repeat(8),
        "z".repeat(30)
    );
    assert_eq!(json(&long), serde_json::to_string(&long).unwrap());
}

#[test]
fn integers_print_like_display() {
    for v in [0u64, 9, 10, 404, 1_000_000, u64::MAX] {
        let mut out = String::new();
        push_u64(&mut out, v);
        assert_eq!(out, v.to_string());
    }
}

#[test]
fn thousandths_print_like_display() {
    let mut checked = 0;
    for k in (0..200_000u64).chain([999_999_999, 123_456_789_012]) {
        let v = (k as f64) / 1000.0;
        let Some(t) = thousandths(v) else { continue };
        let mut out = String::new();
        push_thousandths(&mut out, t);
        assert_eq!(out, v.to_string(), "k = {k}");
        checked += 1;
    }
    assert!(checked > 190_000);
    assert_eq!(thousandths(0.1 + 0.2), None);
    assert_eq!(thousandths(-1.0), None);
    assert_eq!(thousandths(f64::NAN), None);
}

/// What lets the layer write request ids and methods without a scan.
#[test]
fn request_ids_and_methods_never_need_an_escape_or_quotes() {
    use poem::http::{HeaderValue, Method};
    let mut ids = 0;
    let mut methods = 0;
    for b in 0u8..=0xff {
        let plain = !JSON_ESCAPE[b as usize] && !TEXT_QUOTE[b as usize];
        if let Ok(v) = HeaderValue::from_bytes(&[b'x', b]) {
            if crate::logging::request::RequestId::from_header(&v).is_some() {
                assert!(plain, "request id byte {b:#x}");
                ids += 1;
            }
        }
        if Method::from_bytes(&[b'X', b]).is_ok() {
            assert!(plain, "method byte {b:#x}");
            methods += 1;
        }
    }
    // Both accept something (62 alphanumerics and more), so the loop
    // above checked real cases.
    assert!(ids > 62 && methods > 62, "{ids} {methods}");
}

#[test]
fn console_values_are_bare_only_when_plain() {
    let mut out = String::new();
    push_text_str(&mut out, "/products");
    out.push(' ');
    push_text_str(&mut out, "two words");
    out.push(' ');
    push_text_str(&mut out, "");
    assert_eq!(out, "/products \"two words\" \"\"");
}
