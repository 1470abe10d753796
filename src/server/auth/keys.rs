//! API and bearer keys as the guard holds them: keyed digests only, never
//! the keys themselves, each with its principal.

use super::MIN_KEY_LEN;
use crate::logging::request::Name;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

/// Keys as keyed 64-bit digests (SipHash with a key drawn at random when
/// the keys are loaded), each with its principal. The key is secret to the
/// process, so a caller can neither steer a presented key's digest toward a
/// stored one nor learn anything about a stored key from how long a lookup
/// takes: the time depends on the digest alone. One hash and one table
/// probe, however many keys there are.
pub(super) struct Keys {
    by_digest: HashMap<u64, Name, BuildHasherDefault<Digested>>,
    hash: std::hash::RandomState,
}

/// The table's hasher: its keys are already keyed digests, so they are used
/// as they are rather than hashed again.
#[derive(Default)]
struct Digested(u64);

impl std::hash::Hasher for Digested {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here (`write_u64`); fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Keys {
    /// `key:principal` pairs separated by commas or new lines; a key alone
    /// has `scheme` as its principal. Errors name the entry, never the key.
    pub(super) fn parse(text: &str, scheme: &str, shown: &str) -> Result<Keys, String> {
        let hash = std::hash::RandomState::new();
        let mut by_digest: HashMap<u64, Name, BuildHasherDefault<Digested>> = HashMap::default();
        for (i, entry) in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let (key, principal) = match entry.rsplit_once(':') {
                Some((k, p)) => (k.trim(), p.trim()),
                None => (entry, scheme),
            };
            let bad = |what: &str| format!("entry {} of {shown}: {what}", i + 1);
            if key.len() < MIN_KEY_LEN {
                return Err(bad(&format!(
                    "the key is shorter than {MIN_KEY_LEN} characters"
                )));
            }
            if key
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(bad("the key holds a space or a control character"));
            }
            if principal.is_empty() {
                return Err(bad("the principal after `:` is empty"));
            }
            let digest = hash.hash_one(key.as_bytes());
            if by_digest.insert(digest, Name::new(principal)).is_some() {
                return Err(bad("the same key is listed twice"));
            }
        }
        if by_digest.is_empty() {
            return Err(format!("{shown} holds no key"));
        }
        Ok(Keys { by_digest, hash })
    }

    /// The principal of `key`, if it is one of the keys.
    pub(super) fn find(&self, key: &[u8]) -> Option<Name> {
        self.by_digest.get(&self.hash.hash_one(key)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_pairs_and_lone_keys_and_never_show_a_key() {
        let k = Keys::parse(
            "0123456789abcdef:alice, fedcba9876543210fedc:bob\nlonelonelonelonelone",
            "api",
            "$KEYS",
        )
        .unwrap();
        assert_eq!(
            k.find(b"0123456789abcdef")
                .map(|n| n.as_str().to_string())
                .as_deref(),
            Some("alice")
        );
        assert_eq!(
            k.find(b"fedcba9876543210fedc")
                .map(|n| n.as_str().to_string())
                .as_deref(),
            Some("bob")
        );
        assert_eq!(
            k.find(b"lonelonelonelonelone")
                .map(|n| n.as_str().to_string())
                .as_deref(),
            Some("api")
        );
        assert_eq!(k.find(b"0123456789abcdeX"), None);
        let e = Keys::parse("tiny:alice", "api", "$KEYS").err().unwrap();
        assert!(e.contains("entry 1 of $KEYS") && !e.contains("tiny"), "{e}");
        let e = Keys::parse("0123456789abcdef:a,0123456789abcdef:b", "api", "$K")
            .err()
            .unwrap();
        assert!(e.contains("twice") && !e.contains("0123"), "{e}");
        assert!(Keys::parse(" , ", "api", "$K").is_err());
    }
}
