//! The Aho-Corasick automaton a [`super::Masker`] runs over a console: a trie of the
//! patterns with failure links. After each byte it tells which patterns end there, and how
//! many of the last bytes a longer pattern may still be starting with.
//!
//! Children are kept as sibling lists (a trie of a few private keys is mostly chains of one
//! child), except the root's, which has a table: most bytes of a console lead back to it.

use std::collections::VecDeque;

/// A state's index. States are bounded by the patterns' total length, far below `u32::MAX`.
pub(super) type StateId = u32;

/// The state of the empty suffix, where matching starts.
pub(super) const ROOT: StateId = 0;
/// No state: the end of a list.
const NONE: StateId = StateId::MAX;

struct State {
    /// The byte on the edge from the parent.
    byte: u8,
    /// Whether a pattern ends here; its length is `depth`.
    terminal: bool,
    /// The length of the path from the root.
    depth: u32,
    first_child: StateId,
    next_sibling: StateId,
    /// The state of the longest proper suffix of this state's path that is in the trie.
    fail: StateId,
    /// The next state down the failure chain at which a pattern ends.
    output: StateId,
    /// The first state down the failure chain, this one included, that has children: the
    /// longest suffix of the input that a longer pattern may still begin with.
    open: StateId,
}

impl State {
    fn new(byte: u8, depth: u32) -> State {
        State {
            byte,
            terminal: false,
            depth,
            first_child: NONE,
            next_sibling: NONE,
            fail: ROOT,
            output: NONE,
            open: ROOT,
        }
    }
}

pub(super) struct Automaton {
    states: Vec<State>,
    /// The root's children by byte.
    root_next: [StateId; 256],
}

impl Automaton {
    /// The automaton of `patterns`, which are not empty.
    pub(super) fn new<'a>(patterns: impl IntoIterator<Item = &'a [u8]>) -> Automaton {
        let mut automaton = Automaton {
            states: vec![State::new(0, 0)],
            root_next: [NONE; 256],
        };
        for pattern in patterns {
            let mut state = ROOT;
            for &byte in pattern {
                state = match automaton.child(state, byte) {
                    Some(child) => child,
                    None => automaton.add_child(state, byte),
                };
            }
            automaton.state_mut(state).terminal = true;
        }
        automaton.link();
        automaton
    }

    fn state(&self, id: StateId) -> &State {
        &self.states[id as usize]
    }

    fn state_mut(&mut self, id: StateId) -> &mut State {
        &mut self.states[id as usize]
    }

    fn add_child(&mut self, parent: StateId, byte: u8) -> StateId {
        let id = self.states.len() as StateId;
        let mut child = State::new(byte, self.state(parent).depth + 1);
        child.next_sibling = self.state(parent).first_child;
        self.states.push(child);
        self.state_mut(parent).first_child = id;
        if parent == ROOT {
            self.root_next[usize::from(byte)] = id;
        }
        id
    }

    fn child(&self, parent: StateId, byte: u8) -> Option<StateId> {
        if parent == ROOT {
            let child = self.root_next[usize::from(byte)];
            return (child != NONE).then_some(child);
        }
        let mut child = self.state(parent).first_child;
        while child != NONE {
            if self.state(child).byte == byte {
                return Some(child);
            }
            child = self.state(child).next_sibling;
        }
        None
    }

    fn children(&self, parent: StateId) -> impl Iterator<Item = StateId> + '_ {
        std::iter::successors(
            Some(self.state(parent).first_child).filter(|&c| c != NONE),
            |&c| Some(self.state(c).next_sibling).filter(|&s| s != NONE),
        )
    }

    /// Sets the failure, output and open links, breadth first: a state's links are made
    /// from those of shallower states.
    fn link(&mut self) {
        let mut queue: VecDeque<StateId> = self.children(ROOT).collect();
        while let Some(state) = queue.pop_front() {
            let fail = self.state(state).fail;
            let output = if self.state(fail).terminal {
                fail
            } else {
                self.state(fail).output
            };
            let open = if self.state(state).first_child != NONE {
                state
            } else {
                self.state(fail).open
            };
            let s = self.state_mut(state);
            s.output = output;
            s.open = open;
            let children: Vec<StateId> = self.children(state).collect();
            for child in children {
                let byte = self.state(child).byte;
                // The longest suffix of the child's path in the trie: extend the parent's
                // failure chain by the byte.
                let mut suffix = fail;
                let target = loop {
                    if let Some(next) = self.child(suffix, byte) {
                        break next;
                    }
                    if suffix == ROOT {
                        break ROOT;
                    }
                    suffix = self.state(suffix).fail;
                };
                self.state_mut(child).fail = target;
                queue.push_back(child);
            }
        }
    }

    /// The state after `byte` from `state`.
    pub(super) fn next(&self, mut state: StateId, byte: u8) -> StateId {
        loop {
            if let Some(next) = self.child(state, byte) {
                return next;
            }
            if state == ROOT {
                return ROOT;
            }
            state = self.state(state).fail;
        }
    }

    /// The root's child for `byte`, if any: whether `byte` may begin a pattern.
    pub(super) fn starts_pattern(&self, byte: u8) -> bool {
        self.root_next[usize::from(byte)] != NONE
    }

    /// The lengths of the patterns that end with the input that led to `state`, longest
    /// first.
    pub(super) fn matches(&self, state: StateId) -> impl Iterator<Item = usize> + '_ {
        let first = if self.state(state).terminal {
            state
        } else {
            self.state(state).output
        };
        std::iter::successors(Some(first).filter(|&t| t != NONE), |&t| {
            Some(self.state(t).output).filter(|&o| o != NONE)
        })
        .map(|t| self.state(t).depth as usize)
    }

    /// How many of the last bytes of the input that led to `state` a longer pattern may
    /// still begin with.
    pub(super) fn open_len(&self, state: StateId) -> usize {
        self.state(self.state(state).open).depth as usize
    }
}
