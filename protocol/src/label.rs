//! Jenkins label expressions (compat §7.4): which nodes a job may run on.
//!
//! A job's `assignedNode` holds an expression such as `linux && !arm`; the scheduler asks
//! [`LabelExpr::matches`] of every node with the node's labels, its own name being one of
//! them. A blank expression is "any node", which [`parse`] returns as `None`: EXCLUSIVE nodes
//! take only jobs whose expression names them, so "no expression" must stay distinct from
//! every expression.
//!
//! The grammar is Jenkins', loosest operator first; the binary operators associate to the
//! left:
//!
//! ```text
//! expr    := implies ('<->' implies)*
//! implies := or ('->' or)*
//! or      := and ('||' and)*
//! and     := unary ('&&' unary)*
//! unary   := '!' unary | '(' expr ')' | atom
//! atom    := a run of characters other than whitespace and ! & | ( ) "
//!            that stops where `->` or `<->` begins (`x86-64`, `a<b` are atoms; `a->b` is not)
//!          | '"' characters with \" \\ \n \r \t escapes (any other \c is c) '"'
//! ```
//!
//! Expressions come from job XML and the REST API, so [`parse`] bounds their length and
//! nesting ([`MAX_LABEL_EXPR_LEN`], [`MAX_LABEL_EXPR_DEPTH`]) and never panics. A chain such
//! as `a || b || c` is one [`LabelExpr::Or`] of three operands, so a long list of labels does
//! not nest; only parentheses, `!`, and chains of `->` or `<->` do.

use std::fmt::{self, Write as _};

use crate::node_xml::NodeConfig;

mod grammar;

/// Longest expression accepted, in bytes: hand-written expressions are a few dozen bytes, and
/// one that lists a hundred node names still fits.
pub const MAX_LABEL_EXPR_LEN: usize = 4096;
/// Most parentheses, and most operators, nested inside one another. It bounds the parser's
/// recursion and that of every walk over a parsed tree, so hostile input (`((((…`, `!!!!…`)
/// is an error rather than a stack overflow.
pub const MAX_LABEL_EXPR_DEPTH: usize = 64;

/// A parsed label expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelExpr {
    /// A label, or a node's name.
    Atom(String),
    /// `!e`: the node lacks what `e` asks for.
    Not(Box<LabelExpr>),
    /// `a && b && …`: every operand holds. [`parse`] builds it with at least two operands,
    /// one per operand of the chain as written (`(a && b) && c` keeps its inner `And`).
    And(Vec<LabelExpr>),
    /// `a || b || …`: some operand holds; at least two operands, as for [`LabelExpr::And`].
    Or(Vec<LabelExpr>),
    /// `a -> b`: if `a` holds, `b` does.
    Implies(Box<LabelExpr>, Box<LabelExpr>),
    /// `a <-> b`: both hold or neither does.
    Iff(Box<LabelExpr>, Box<LabelExpr>),
}

/// Parses a label expression; `Ok(None)` when it is blank (any node will do).
pub fn parse(text: &str) -> Result<Option<LabelExpr>, LabelError> {
    if text.len() > MAX_LABEL_EXPR_LEN {
        return Err(LabelError::TooLong(text.len()));
    }
    let invalid = |problem| LabelError::Invalid {
        expression: text.into(),
        problem,
    };
    let tokens = grammar::lex(text).map_err(invalid)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    grammar::parse(text, tokens).map(Some).map_err(invalid)
}

impl LabelExpr {
    /// Whether a node whose labels are those for which `has_label` is true satisfies the
    /// expression.
    pub fn matches(&self, has_label: impl Fn(&str) -> bool) -> bool {
        self.eval(&has_label)
    }

    /// Whether `node` satisfies the expression: its labels, and its name, count.
    pub fn matches_node(&self, node: &NodeConfig) -> bool {
        self.matches(|label| {
            label == node.name || node.labels.split_whitespace().any(|l| l == label)
        })
    }

    fn eval(&self, has_label: &dyn Fn(&str) -> bool) -> bool {
        match self {
            LabelExpr::Atom(label) => has_label(label),
            LabelExpr::Not(e) => !e.eval(has_label),
            LabelExpr::And(operands) => operands.iter().all(|e| e.eval(has_label)),
            LabelExpr::Or(operands) => operands.iter().any(|e| e.eval(has_label)),
            LabelExpr::Implies(a, b) => !a.eval(has_label) || b.eval(has_label),
            LabelExpr::Iff(a, b) => a.eval(has_label) == b.eval(has_label),
        }
    }

    /// The label names the expression mentions, each once, in the order they first appear.
    pub fn atoms(&self) -> Vec<&str> {
        let mut atoms = Vec::new();
        self.collect_atoms(&mut atoms);
        atoms
    }

    fn collect_atoms<'a>(&'a self, atoms: &mut Vec<&'a str>) {
        match self {
            LabelExpr::Atom(label) => {
                if !atoms.contains(&label.as_str()) {
                    atoms.push(label);
                }
            }
            LabelExpr::Not(e) => e.collect_atoms(atoms),
            LabelExpr::And(operands) | LabelExpr::Or(operands) => {
                operands.iter().for_each(|e| e.collect_atoms(atoms))
            }
            LabelExpr::Implies(a, b) | LabelExpr::Iff(a, b) => {
                a.collect_atoms(atoms);
                b.collect_atoms(atoms);
            }
        }
    }

    /// Binding strength of the operator at the root; higher binds tighter.
    fn precedence(&self) -> u8 {
        match self {
            LabelExpr::Iff(..) => 1,
            LabelExpr::Implies(..) => 2,
            LabelExpr::Or(_) => 3,
            LabelExpr::And(_) => 4,
            LabelExpr::Not(_) => 5,
            LabelExpr::Atom(_) => 6,
        }
    }
}

/// The canonical form: operators spaced, labels quoted only when they must be, parentheses
/// only where precedence or associativity needs them. It parses back to the same tree
/// (for an `And` or `Or` of fewer than two operands, which [`parse`] never builds, it cannot).
impl fmt::Display for LabelExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let operand = |f: &mut fmt::Formatter<'_>, e: &LabelExpr, parens: bool| {
            if parens {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        let own = self.precedence();
        match self {
            LabelExpr::Atom(label) => write_atom(f, label),
            LabelExpr::Not(e) => {
                f.write_char('!')?;
                operand(f, e, e.precedence() < own)
            }
            LabelExpr::And(operands) | LabelExpr::Or(operands) => {
                let op = if matches!(self, LabelExpr::And(_)) {
                    " && "
                } else {
                    " || "
                };
                for (i, e) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(op)?;
                    }
                    // An operand of the same operator keeps its parentheses: the parser
                    // would otherwise fold it into this chain.
                    operand(f, e, e.precedence() <= own)?;
                }
                Ok(())
            }
            LabelExpr::Implies(a, b) | LabelExpr::Iff(a, b) => {
                let op = if matches!(self, LabelExpr::Implies(..)) {
                    " -> "
                } else {
                    " <-> "
                };
                // Left-associative: only the right operand needs parentheses at equal rank.
                operand(f, a, a.precedence() < own)?;
                f.write_str(op)?;
                operand(f, b, b.precedence() <= own)
            }
        }
    }
}

/// Whether `c` may appear in an unquoted label.
fn is_atom_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '!' | '&' | '|' | '(' | ')' | '"'))
}

/// Writes a label, quoted when it would not read back as one label unquoted.
fn write_atom(f: &mut fmt::Formatter<'_>, label: &str) -> fmt::Result {
    let plain = !label.is_empty()
        && !label.contains("->")
        && label.chars().all(|c| is_atom_char(c) && !c.is_control());
    if plain {
        return f.write_str(label);
    }
    f.write_char('"')?;
    for c in label.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("Label expression of {0} bytes is over the limit of {MAX_LABEL_EXPR_LEN} bytes")]
    TooLong(usize),
    #[error("Invalid label expression ‘{expression}’: {problem}")]
    Invalid {
        expression: String,
        problem: Problem,
    },
}

/// What is wrong with an expression, and where. Tokens are quoted as written in canonical
/// form (`&&`, `(`, a label).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("expected a label{}{} {at}", after_token(.after), found_token(.found))]
    ExpectedLabel {
        after: Option<String>,
        found: Option<String>,
        at: Position,
    },
    #[error("expected an operator after ‘{after}’, found ‘{found}’ {at}")]
    ExpectedOperator {
        after: String,
        found: String,
        at: Position,
    },
    #[error("‘)’ {at} has no matching ‘(’")]
    UnmatchedClose { at: Position },
    #[error("‘(’ {at} is never closed")]
    Unclosed { at: Position },
    #[error("‘{ch}’ {at} is not an operator (‘{ch}{ch}’ is)")]
    LoneOperatorChar { ch: char, at: Position },
    #[error("quoted label {at} has no closing ‘\"’")]
    UnterminatedQuote { at: Position },
    #[error("quoted label {at} is empty")]
    EmptyLabel { at: Position },
    #[error("nested more than {MAX_LABEL_EXPR_DEPTH} levels deep {at}")]
    TooDeep { at: Position },
}

fn after_token(after: &Option<String>) -> String {
    after
        .as_ref()
        .map_or_else(String::new, |t| format!(" after ‘{t}’"))
}

fn found_token(found: &Option<String>) -> String {
    found
        .as_ref()
        .map_or_else(String::new, |t| format!(", found ‘{t}’"))
}

/// Where in the expression a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Counted in characters from 1.
    Column(usize),
    End,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Column(n) => write!(f, "at column {n}"),
            Position::End => f.write_str("at the end"),
        }
    }
}

/// The position of byte offset `at` of `text` (`None`: the end).
fn position(text: &str, at: Option<usize>) -> Position {
    match at.and_then(|byte| text.get(..byte)) {
        Some(before) => Position::Column(before.chars().count() + 1),
        None => Position::End,
    }
}

#[cfg(test)]
mod tests;
