//! Trace and span ids, and the W3C Trace Context headers that carry them.

use std::cell::Cell;
use std::hash::BuildHasher;

/// A 128-bit trace id (never all zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id (never all zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

fn unhex(s: &[u8], out: &mut [u8]) -> Option<()> {
    if s.len() != 2 * out.len() {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(s[2 * i])? << 4 | digit(s[2 * i + 1])?;
    }
    Some(())
}

/// Lower-case hex digits, without an allocation.
#[derive(Clone, Copy)]
pub struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    /// The digits as bytes.
    pub fn into_bytes(self) -> [u8; N] {
        self.0
    }
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<const N: usize> std::fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TraceId {
    /// 32 lower-case hex digits.
    pub fn hex(&self) -> Hex<32> {
        let mut out = [0u8; 32];
        hex_into(&self.0, &mut out);
        Hex(out)
    }
    /// From 32 lower-case hex digits, not all zero.
    pub fn from_hex(s: &str) -> Option<TraceId> {
        let mut b = [0u8; 16];
        unhex(s.as_bytes(), &mut b)?;
        (b != [0; 16]).then_some(TraceId(b))
    }
    /// A new random trace id.
    pub fn random() -> TraceId {
        let (a, b) = (next(), next());
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&a.to_be_bytes());
        out[8..].copy_from_slice(&b.to_be_bytes());
        if out == [0; 16] {
            out[15] = 1;
        }
        TraceId(out)
    }
    /// The low 8 bytes as an integer: what the `traceidratio` sampler
    /// compares (W3C Trace Context level 2: the right-most 7 bytes are
    /// random; OpenTelemetry's samplers read the last 8).
    pub fn low_u64(&self) -> u64 {
        u64::from_be_bytes(self.0[8..].try_into().unwrap_or_default())
    }
}

impl SpanId {
    /// 16 lower-case hex digits.
    pub fn hex(&self) -> Hex<16> {
        let mut out = [0u8; 16];
        hex_into(&self.0, &mut out);
        Hex(out)
    }
    /// From 16 lower-case hex digits, not all zero.
    pub fn from_hex(s: &str) -> Option<SpanId> {
        let mut b = [0u8; 8];
        unhex(s.as_bytes(), &mut b)?;
        (b != [0; 8]).then_some(SpanId(b))
    }
    /// A new random span id.
    pub fn random() -> SpanId {
        let v = next();
        SpanId(if v == 0 { 1 } else { v }.to_be_bytes())
    }
}

impl std::fmt::Debug for TraceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TraceId({})", self.hex())
    }
}

impl std::fmt::Debug for SpanId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpanId({})", self.hex())
    }
}

/// 64 random bits from a per-thread splitmix64 sequence with a random
/// start (the standard library's random hashing keys). Ids need to be
/// unique and unpredictable enough to sample by, not secret. Distinct
/// within a thread (splitmix64's output is a bijection of its state), and
/// across threads unless two random 64-bit starts land within a run's
/// length of each other. Request ids are made of it too.
pub fn next() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(random_start());
    }
    fn random_start() -> u64 {
        std::collections::hash_map::RandomState::new().hash_one(0u8)
    }
    fn splitmix64(state: &Cell<u64>) -> u64 {
        let x = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    STATE
        .try_with(splitmix64)
        .unwrap_or_else(|_| splitmix64(&Cell::new(random_start())))
}

/// The longest `tracestate` kept (the spec's 32 members of at most 256
/// bytes could reach 8 KB; it asks to keep at least 512 characters).
pub const MAX_TRACESTATE: usize = 512;

/// A W3C `traceparent`: the trace, the caller's span and its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: u8,
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>` (version `00`, or a later
    /// version read as `00` as the spec asks; ids not all zero).
    pub fn parse(s: &str) -> Option<TraceParent> {
        let s = s.trim_matches([' ', '\t']).as_bytes();
        // version "-" trace "-" parent "-" flags
        if s.len() < 55 || s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return None;
        }
        let mut version = [0u8; 1];
        unhex(&s[..2], &mut version)?;
        if version[0] == 0xff || (version[0] == 0 && s.len() != 55) {
            return None;
        }
        if s.len() > 55 && s[55] != b'-' {
            return None;
        }
        let trace_id = TraceId::from_hex(std::str::from_utf8(&s[3..35]).ok()?)?;
        let parent_id = SpanId::from_hex(std::str::from_utf8(&s[36..52]).ok()?)?;
        let mut flags = [0u8; 1];
        unhex(&s[53..55], &mut flags)?;
        Some(TraceParent {
            trace_id,
            parent_id,
            flags: flags[0],
        })
    }

    /// Whether the caller sampled the trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// `00-<trace>-<span>-<flags>`: what this service sends on to the next.
pub fn traceparent(trace_id: TraceId, span_id: SpanId, sampled: bool) -> String {
    format!(
        "00-{}-{}-{}",
        trace_id.hex(),
        span_id.hex(),
        if sampled { "01" } else { "00" }
    )
}

/// Whether `s` is a `tracestate` to pass on: at most [`MAX_TRACESTATE`]
/// bytes of visible ASCII, spaces, tabs and commas (the members are not
/// interpreted, only carried).
pub fn valid_tracestate(s: &str) -> bool {
    s.len() <= MAX_TRACESTATE
        && s.bytes()
            .all(|b| b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_parsed_as_the_spec_says() {
        let t =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            t.trace_id.hex().as_str(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(t.parent_id.hex().as_str(), "00f067aa0ba902b7");
        assert!(t.sampled());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-xyz")
                .is_some_and(|t| !t.sampled())
        );
    }

    #[test]
    fn ids_round_trip_through_hex_and_are_never_zero() {
        for _ in 0..1000 {
            let t = TraceId::random();
            let s = SpanId::random();
            assert_eq!(TraceId::from_hex(t.hex().as_str()), Some(t));
            assert_eq!(SpanId::from_hex(s.hex().as_str()), Some(s));
        }
        assert_ne!(TraceId::random(), TraceId::random());
        let p = traceparent(TraceId([1; 16]), SpanId([2; 8]), true);
        assert_eq!(
            TraceParent::parse(&p).map(|t| (t.trace_id, t.parent_id, t.sampled())),
            Some((TraceId([1; 16]), SpanId([2; 8]), true))
        );
    }
}
