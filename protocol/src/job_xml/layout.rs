//! Where things go inside one element of a job config: the children Steward interprets are
//! marked by field, the others kept verbatim, all in document order. This is how elements
//! Steward does not know stay in place through a read and a write: the typed values live in
//! `JobConfig` and friends, and the layout says where among the kept elements to write them.

use crate::xml::{Element, Node, XmlError};

/// A child element Steward interprets. Every field of a layout is written by every write,
/// so its place is never lost.
pub(crate) trait Field: Copy + Eq {
    /// The element names the field is read from. The first places a field missing from the
    /// document (see [`Layout::read`]).
    fn names(self) -> &'static [&'static str];
}

/// One child of the element, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot<F> {
    /// Where the field's elements are written.
    Field(F),
    /// An element Steward does not interpret, written back as read.
    Kept(Element),
}

/// The attributes and children of an element, with each of its fields exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout<F> {
    pub attributes: Vec<(String, String)>,
    pub slots: Vec<Slot<F>>,
}

impl<F: Field> Layout<F> {
    /// The fields in the order given, nothing else.
    pub fn new(fields: &[F]) -> Self {
        Layout {
            attributes: Vec::new(),
            slots: fields.iter().copied().map(Slot::Field).collect(),
        }
    }

    /// Reads `element`'s children: a child named by one of `fields` goes to `read`, the
    /// others are kept. A field read from two names (such as `assignedNode` and `canRoam`)
    /// sits where the first of them was. A field missing from the document is placed before
    /// the first child that Jenkins writes after it (`jenkins_order` lists element names in
    /// the order Jenkins writes them), or at the end. Text between children is layout and is
    /// dropped; an interpreted element named twice is refused, since one of the two values
    /// would be lost.
    pub fn read(
        element: &Element,
        fields: &[F],
        jenkins_order: &[&str],
        mut read: impl FnMut(F, &Element) -> Result<(), XmlError>,
    ) -> Result<Self, XmlError> {
        let mut slots = Vec::new();
        let mut placed: Vec<F> = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for child in element.child_elements() {
            let name = child.name.as_str();
            let Some(field) = fields.iter().copied().find(|f| f.names().contains(&name)) else {
                slots.push(Slot::Kept(child.clone()));
                continue;
            };
            if seen.contains(&name) {
                return Err(XmlError::Duplicate {
                    element: name.into(),
                    parent: element.name.clone(),
                });
            }
            seen.push(name);
            read(field, child)?;
            if !placed.contains(&field) {
                placed.push(field);
                slots.push(Slot::Field(field));
            }
        }
        let rank = |name: &str| jenkins_order.iter().position(|n| *n == name);
        for &field in fields {
            if placed.contains(&field) {
                continue;
            }
            let mine = rank(field.names()[0]);
            let at = slots
                .iter()
                .position(|slot| {
                    let name = match slot {
                        Slot::Field(f) => f.names()[0],
                        Slot::Kept(e) => &e.name,
                    };
                    matches!((rank(name), mine), (Some(theirs), Some(mine)) if theirs > mine)
                })
                .unwrap_or(slots.len());
            slots.insert(at, Slot::Field(field));
        }
        Ok(Layout {
            attributes: element.attributes.clone(),
            slots,
        })
    }

    /// Writes the element `name`: kept children as they were, and in each field's place the
    /// elements `write` gives for it.
    pub fn write(&self, name: &str, mut write: impl FnMut(F, &mut Vec<Element>)) -> Element {
        let mut element = Element::new(name);
        element.attributes = self.attributes.clone();
        let mut written = Vec::new();
        for slot in &self.slots {
            match slot {
                Slot::Field(field) => write(*field, &mut written),
                Slot::Kept(kept) => written.push(kept.clone()),
            }
            element
                .children
                .extend(written.drain(..).map(Node::Element));
        }
        element
    }

    /// The children kept verbatim, in document order.
    pub fn kept(&self) -> impl Iterator<Item = &Element> {
        self.slots.iter().filter_map(|slot| match slot {
            Slot::Kept(e) => Some(e),
            Slot::Field(_) => None,
        })
    }
}
