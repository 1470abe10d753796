//! Positions of every YAML node, keyed by field path.
//!
//! serde does not expose spans, so a second, event-level pass with
//! `yaml-rust2` records where each key and value starts. Paths use the same
//! format as `serde_path_to_error`: `endpoints[3].handler`.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// 1-based (line, column).
pub type Pos = (usize, usize);

/// Where each path's key and value begin.
#[derive(Debug, Default, Clone)]
pub struct SpanIndex {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

enum Frame {
    /// `start`: where the mapping event was seen; its recorded position is
    /// its first key (yaml-rust2 marks block mappings after the first `:`).
    Map {
        path: String,
        key: Option<String>,
        start: Option<Pos>,
    },
    Seq {
        path: String,
        idx: usize,
    },
}

struct Builder {
    index: SpanIndex,
    stack: Vec<Frame>,
}

fn pos(m: &Marker) -> Pos {
    // yaml-rust2 markers: 1-based line, 0-based column.
    (m.line(), m.col() + 1)
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Builder {
    /// The path of the value about to be read, or `None` if this event is a map key.
    fn value_path(&mut self, mark: &Marker, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, idx }) => {
                let p = format!("{path}[{idx}]");
                *idx += 1;
                Some(p)
            }
            Some(Frame::Map { path, key, start }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    if start.take().is_some() {
                        self.index.values.entry(path.clone()).or_insert(pos(mark));
                    }
                    self.index.keys.insert(join(path, &k), pos(mark));
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(s, ..) => {
                if let Some(p) = self.value_path(&mark, Some(&s)) {
                    self.index.values.entry(p).or_insert(pos(&mark));
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.value_path(&mark, None) {
                    self.index.values.entry(p).or_insert(pos(&mark));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                // A complex (non-scalar) key: give it a placeholder name.
                let path = self.value_path(&mark, None).unwrap_or_else(|| "?".into());
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        key: None,
                        start: Some(pos(&mark)),
                    }
                } else {
                    self.index.values.entry(path.clone()).or_insert(pos(&mark));
                    Frame::Seq { path, idx: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                // An empty mapping never saw a key: fall back to its event mark.
                if let Some(Frame::Map {
                    path,
                    start: Some(p),
                    ..
                }) = self.stack.pop()
                {
                    self.index.values.entry(path).or_insert(p);
                }
            }
            _ => {}
        }
    }
}

impl SpanIndex {
    /// Parses `text`; a syntax error comes back as its position and message.
    pub fn build(text: &str) -> Result<SpanIndex, (Pos, String)> {
        let mut b = Builder {
            index: SpanIndex::default(),
            stack: Vec::new(),
        };
        let mut parser = Parser::new_from_str(text);
        parser
            .load(&mut b, false)
            .map_err(|e| (pos(e.marker()), e.info().to_string()))?;
        Ok(b.index)
    }

    /// Where the value at `path` starts, falling back to the nearest ancestor.
    pub fn value(&self, path: &str) -> Pos {
        if path.is_empty() {
            return (1, 1);
        }
        let mut p = path;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match parent(p) {
                Some(up) => p = up,
                None => return (1, 1),
            }
        }
    }

    /// Where the key of `path` is written, if it is a mapping key.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.keys.get(path).copied()
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_nested_positions() {
        let text =
            "service:\n  name: x\nendpoints:\n  - path: /a\n    handler: info\n  - path: /b\n";
        let idx = SpanIndex::build(text).unwrap();
        assert_eq!(idx.value("service.name"), (2, 9));
        assert_eq!(idx.value("endpoints[0].handler"), (5, 14));
        assert_eq!(idx.key("endpoints[1].path"), Some((6, 5)));
        assert_eq!(idx.value("endpoints[1].path"), (6, 11));
        // Unknown path falls back to its nearest known ancestor.
        assert_eq!(idx.value("endpoints[1].nope.deeper"), (6, 5));
        assert_eq!(idx.value("endpoints[1]"), (6, 5));
        assert_eq!(idx.value(""), (1, 1));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = SpanIndex::build("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.0 .0 >= 1);
    }
}
