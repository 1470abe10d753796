//! The bounded event store behind annotations: start-up, bursts of 5xx
//! responses and low-stock changes. A full store drops its oldest event.

use crate::manifest::EventKind;
use serde_json::{json, Value as Json};
use std::collections::VecDeque;

/// Every tag an event can carry (the values of the `tags` ad-hoc filter key).
pub const TAGS: &[&str] = &["telltale", "startup", "5xx", "low-stock"];

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotationEvent {
    pub kind: EventKind,
    pub time_ms: i64,
    /// For events that span an interval (a burst).
    pub time_end_ms: Option<i64>,
    pub title: String,
    pub text: String,
    pub tags: Vec<String>,
}

impl AnnotationEvent {
    pub fn new(kind: EventKind, time_ms: i64, title: &str, text: String) -> Self {
        let tag = match kind {
            EventKind::Startup => TAGS[1],
            EventKind::ErrorBurst => TAGS[2],
            EventKind::LowStock => TAGS[3],
        };
        AnnotationEvent {
            kind,
            time_ms,
            time_end_ms: None,
            title: title.into(),
            text,
            tags: vec![TAGS[0].into(), tag.into()],
        }
    }

    /// True when the event overlaps `[from, to]`.
    pub fn overlaps(&self, from: i64, to: i64) -> bool {
        self.time_ms <= to && self.time_end_ms.unwrap_or(self.time_ms) >= from
    }

    /// The SimpleJSON `/annotations` item (without the echoed `annotation`).
    pub fn to_json(&self) -> Json {
        let mut v = json!({
            "time": self.time_ms,
            "title": self.title,
            "text": self.text,
            "tags": self.tags,
        });
        if let Some(end) = self.time_end_ms {
            v["timeEnd"] = json!(end);
        }
        v
    }
}

#[derive(Debug)]
pub struct Store {
    cap: usize,
    events: VecDeque<AnnotationEvent>,
}

impl Store {
    pub fn new(cap: usize) -> Self {
        Store {
            cap: cap.max(1),
            events: VecDeque::new(),
        }
    }

    /// Appends `other`'s events (oldest first); the capacity still holds.
    pub fn absorb(&mut self, other: &Store) {
        for e in &other.events {
            self.push(e.clone());
        }
    }

    pub fn push(&mut self, e: AnnotationEvent) {
        if self.events.len() == self.cap {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events of `kinds` overlapping `[from, to]`, oldest first.
    pub fn select(&self, kinds: &[EventKind], from: i64, to: i64) -> Vec<AnnotationEvent> {
        self.events
            .iter()
            .filter(|e| kinds.contains(&e.kind) && e.overlaps(from, to))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_bounded_and_selects_by_kind_and_range() {
        let mut s = Store::new(2);
        s.push(AnnotationEvent::new(
            EventKind::Startup,
            10,
            "a",
            String::new(),
        ));
        s.push(AnnotationEvent::new(
            EventKind::LowStock,
            20,
            "b",
            String::new(),
        ));
        let mut burst = AnnotationEvent::new(EventKind::ErrorBurst, 30, "c", String::new());
        burst.time_end_ms = Some(40);
        s.push(burst);
        assert_eq!(s.len(), 2);
        assert!(s.select(&[EventKind::Startup], 0, 100).is_empty());
        assert_eq!(s.select(&EventKind::ALL, 35, 100).len(), 1);
        assert_eq!(s.select(&EventKind::ALL, 0, 25).len(), 1);
        assert_eq!(s.select(&[EventKind::LowStock], 21, 29).len(), 0);
    }
}
