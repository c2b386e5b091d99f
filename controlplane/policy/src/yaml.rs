//! A small YAML node tree with source positions, built from yaml-rust2's
//! event stream so that this crate decides what is accepted: one document,
//! no duplicate mapping keys, bounded nesting depth, bounded node count
//! (alias expansion included, so an alias bomb is refused early), and only
//! scalar mapping keys.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::limits::{MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NODES};

/// A 1-based source position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn from_marker(m: &Marker) -> Pos {
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            col: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
        }
    }
}

/// One node of the document.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    /// `plain` is true for an unquoted, non-block scalar (so `"10"` is a
    /// string while `10` is a number).
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys are scalars; the key's position is kept for diagnostics.
    Map(Vec<(Key, Node)>),
}

/// A mapping key.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub pos: Pos,
    pub name: String,
}

impl Node {
    /// A short name of this node's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { value, plain } => {
                if *plain && is_null(value) {
                    "null"
                } else {
                    "a scalar"
                }
            }
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// Is this plain scalar a YAML null?
pub fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

/// Why a document could not be turned into a tree. The position is where
/// the problem was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeError {
    pub pos: Pos,
    pub message: String,
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Key, Node)>,
        keys: HashSet<String>,
        pending_key: Option<Key>,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// Nodes produced so far, counting every node an alias expands to.
    nodes: usize,
    root: Option<Node>,
    documents: usize,
}

fn node_size(n: &Node) -> usize {
    match &n.kind {
        NodeKind::Scalar { .. } => 1,
        NodeKind::Seq(v) => v.iter().fold(1usize, |a, c| a.saturating_add(node_size(c))),
        NodeKind::Map(v) => v.iter().fold(1usize, |a, (_, c)| {
            a.saturating_add(1).saturating_add(node_size(c))
        }),
    }
}

impl Builder {
    fn count(&mut self, n: usize, pos: Pos) -> Result<(), TreeError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(TreeError {
                pos,
                message: format!(
                    "document expands to more than {MAX_NODES} nodes (alias expansion included); \
                     refusing it (possible alias bomb)"
                ),
            });
        }
        Ok(())
    }

    /// Attach a finished node to its parent (or make it the root).
    fn push_value(&mut self, node: Node) -> Result<(), TreeError> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(TreeError {
                        pos: node.pos,
                        message: "expected exactly one YAML document".into(),
                    });
                }
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map {
                entries,
                keys,
                pending_key,
                ..
            }) => match pending_key.take() {
                Some(k) => {
                    entries.push((k, node));
                    Ok(())
                }
                None => {
                    let name = match node.kind {
                        NodeKind::Scalar { value, .. } => value,
                        _ => {
                            return Err(TreeError {
                                pos: node.pos,
                                message: format!(
                                    "mapping keys must be plain strings, found {}",
                                    node.type_name()
                                ),
                            })
                        }
                    };
                    if !keys.insert(name.clone()) {
                        return Err(TreeError {
                            pos: node.pos,
                            message: format!("duplicate key \"{name}\""),
                        });
                    }
                    *pending_key = Some(Key {
                        pos: node.pos,
                        name,
                    });
                    Ok(())
                }
            },
        }
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), TreeError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(TreeError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(1, pos)?;
        self.stack.push(frame);
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn event(&mut self, ev: Event, mark: &Marker) -> Result<bool, TreeError> {
        let pos = Pos::from_marker(mark);
        match ev {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(true),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(TreeError {
                        pos,
                        message: "expected exactly one YAML document, found several".into(),
                    });
                }
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        return Err(TreeError {
                            pos,
                            message: "alias refers to an unknown anchor".into(),
                        })
                    }
                };
                self.count(node_size(&node), pos)?;
                let node = Node {
                    pos,
                    kind: node.kind,
                };
                self.push_value(node)?;
            }
            Event::Scalar(value, style, anchor, _tag) => {
                self.count(1, pos)?;
                let node = Node {
                    pos,
                    kind: NodeKind::Scalar {
                        value,
                        plain: style == TScalarStyle::Plain,
                    },
                };
                self.remember(anchor, &node);
                self.push_value(node)?;
            }
            Event::SequenceStart(anchor, _tag) => self.open(
                Frame::Seq {
                    pos,
                    anchor,
                    items: Vec::new(),
                },
                pos,
            )?,
            Event::MappingStart(anchor, _tag) => self.open(
                Frame::Map {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    keys: HashSet::new(),
                    pending_key: None,
                },
                pos,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            pos,
                            kind: NodeKind::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => {
                        // A block mapping's start event points at its first
                        // `:`; its first key is where it really starts.
                        let start = match entries.first() {
                            Some((k, _)) if (k.pos.line, k.pos.col) < (pos.line, pos.col) => k.pos,
                            _ => pos,
                        };
                        (
                            Node {
                                pos: start,
                                kind: NodeKind::Map(entries),
                            },
                            anchor,
                        )
                    }
                    None => {
                        return Err(TreeError {
                            pos,
                            message: "unbalanced YAML events".into(),
                        })
                    }
                };
                self.remember(anchor, &node);
                self.push_value(node)?;
            }
        }
        Ok(false)
    }
}

/// Parse one YAML (or JSON) document into a [`Node`] tree, enforcing the
/// size, depth and node-count limits. The size limit is checked before any
/// parsing.
pub fn parse(source: &str) -> Result<Node, TreeError> {
    if source.len() > MAX_DOCUMENT_BYTES {
        return Err(TreeError {
            pos: Pos { line: 1, col: 1 },
            message: format!(
                "document is {} bytes, more than the limit of {} bytes",
                source.len(),
                MAX_DOCUMENT_BYTES
            ),
        });
    }
    let mut parser = Parser::new_from_str(source);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        nodes: 0,
        root: None,
        documents: 0,
    };
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| TreeError {
            pos: Pos::from_marker(e.marker()),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        if b.event(ev, &mark)? {
            break;
        }
    }
    b.root.ok_or(TreeError {
        pos: Pos { line: 1, col: 1 },
        message: "empty document: expected a mapping with at least `version: 1`".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let n = parse("a: 1\nbb:\n  - x\n").unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        assert_eq!(m[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(m[1].0.pos, Pos { line: 2, col: 1 });
        let NodeKind::Seq(s) = &m[1].1.kind else {
            panic!()
        };
        assert_eq!(s[0].pos, Pos { line: 3, col: 5 });
    }

    #[test]
    fn duplicate_key_refused() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, col: 1 });
        assert!(e.message.contains("duplicate key \"a\""));
    }

    #[test]
    fn alias_bomb_refused() {
        let mut s = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        let mut prev = 'a';
        for c in 'b'..='j' {
            s.push_str(&format!("{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
            prev = c;
        }
        let e = parse(&s).unwrap_err();
        assert!(e.message.contains("alias bomb"), "{}", e.message);
    }

    #[test]
    fn small_aliases_work() {
        let n = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        assert_eq!(m[0].1.kind, m[1].1.kind);
    }

    #[test]
    fn deep_nesting_refused() {
        let s = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse(&s).unwrap_err();
        assert!(e.message.contains("nesting deeper"), "{}", e.message);
    }

    #[test]
    fn two_documents_refused() {
        let e = parse("---\na: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.message.contains("one YAML document"), "{}", e.message);
    }

    #[test]
    fn quoted_scalars_are_not_plain() {
        let n = parse("a: \"10\"\nb: 10\n").unwrap();
        let NodeKind::Map(m) = &n.kind else { panic!() };
        assert!(matches!(
            &m[0].1.kind,
            NodeKind::Scalar { plain: false, .. }
        ));
        assert!(matches!(&m[1].1.kind, NodeKind::Scalar { plain: true, .. }));
    }
}
