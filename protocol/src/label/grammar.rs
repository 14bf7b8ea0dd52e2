//! The lexer and the recursive-descent parser behind [`super::parse`].

use std::fmt::{self, Write as _};

use super::{
    LabelExpr, MAX_LABEL_EXPR_DEPTH, Position, Problem, is_atom_char, position, write_atom,
};

/// Parses the tokens of `text`, which are not empty.
pub(super) fn parse(text: &str, tokens: Vec<(Token, usize)>) -> Result<LabelExpr, Problem> {
    Parser {
        text,
        tokens,
        next: 0,
    }
    .top()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Token {
    And,
    Or,
    Not,
    Implies,
    Iff,
    Open,
    Close,
    Atom(String),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::And => f.write_str("&&"),
            Token::Or => f.write_str("||"),
            Token::Not => f.write_char('!'),
            Token::Implies => f.write_str("->"),
            Token::Iff => f.write_str("<->"),
            Token::Open => f.write_char('('),
            Token::Close => f.write_char(')'),
            Token::Atom(label) => write_atom(f, label),
        }
    }
}

/// Splits `text` into tokens, each with the byte offset where it starts.
pub(super) fn lex(text: &str) -> Result<Vec<(Token, usize)>, Problem> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let (start, rest) = (i, &text[i..]);
        // Counting characters is linear: only an error pays for it.
        let at = || position(text, Some(start));
        let (token, len) = if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        } else if rest.starts_with("&&") {
            (Token::And, 2)
        } else if rest.starts_with("||") {
            (Token::Or, 2)
        } else if rest.starts_with("<->") {
            (Token::Iff, 3)
        } else if rest.starts_with("->") {
            (Token::Implies, 2)
        } else {
            match c {
                '!' => (Token::Not, 1),
                '(' => (Token::Open, 1),
                ')' => (Token::Close, 1),
                '&' | '|' => return Err(Problem::LoneOperatorChar { ch: c, at: at() }),
                '"' => {
                    let (label, len) =
                        quoted(rest).ok_or_else(|| Problem::UnterminatedQuote { at: at() })?;
                    if label.is_empty() {
                        return Err(Problem::EmptyLabel { at: at() });
                    }
                    (Token::Atom(label), len)
                }
                _ => {
                    let len = unquoted_len(rest);
                    (Token::Atom(rest[..len].into()), len)
                }
            }
        };
        tokens.push((token, i));
        i += len;
    }
    Ok(tokens)
}

/// The length of the unquoted label at the start of `rest`, which starts with an atom
/// character that begins no operator: up to the next character that is not an atom
/// character or that begins `->` or `<->`. Never 0, so the lexer always moves on.
fn unquoted_len(rest: &str) -> usize {
    rest.char_indices()
        .skip(1)
        .find(|&(i, c)| {
            !is_atom_char(c) || rest[i..].starts_with("->") || rest[i..].starts_with("<->")
        })
        .map_or(rest.len(), |(i, _)| i)
}

/// The label of the quoted string at the start of `rest` (which starts with `"`) and the
/// length of that string with its quotes; `None` when it is not closed.
fn quoted(rest: &str) -> Option<(String, usize)> {
    let mut label = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((label, i + 1)),
            '\\' => {
                let (_, escaped) = chars.next()?;
                label.push(match escaped {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    other => other,
                });
            }
            c => label.push(c),
        }
    }
    None
}

/// A subtree and how many operators deep it is (an atom is 0).
struct Parsed {
    expr: LabelExpr,
    depth: usize,
}

/// Recursive descent over the tokens, one method per precedence level. The levels loop over
/// their operators; only `!` and `(` recurse, one level of `nesting` each, so the stack is
/// bounded by [`MAX_LABEL_EXPR_DEPTH`].
struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Token, usize)>,
    next: usize,
}

impl Parser<'_> {
    fn top(&mut self) -> Result<LabelExpr, Problem> {
        let parsed = self.iff(0)?;
        match self.tokens.get(self.next) {
            None => Ok(parsed.expr),
            Some((Token::Close, at)) => Err(Problem::UnmatchedClose {
                at: self.position(Some(*at)),
            }),
            Some(found) => Err(self.expected_operator(found)),
        }
    }

    fn iff(&mut self, nesting: usize) -> Result<Parsed, Problem> {
        let mut left = self.implies(nesting)?;
        while let Some(at) = self.eat(&Token::Iff) {
            let right = self.implies(nesting)?;
            let depth = self.deeper(at, left.depth.max(right.depth))?;
            left = Parsed {
                expr: LabelExpr::Iff(Box::new(left.expr), Box::new(right.expr)),
                depth,
            };
        }
        Ok(left)
    }

    fn implies(&mut self, nesting: usize) -> Result<Parsed, Problem> {
        let mut left = self.or(nesting)?;
        while let Some(at) = self.eat(&Token::Implies) {
            let right = self.or(nesting)?;
            let depth = self.deeper(at, left.depth.max(right.depth))?;
            left = Parsed {
                expr: LabelExpr::Implies(Box::new(left.expr), Box::new(right.expr)),
                depth,
            };
        }
        Ok(left)
    }

    fn or(&mut self, nesting: usize) -> Result<Parsed, Problem> {
        self.chain(nesting, &Token::Or, Self::and, LabelExpr::Or)
    }

    fn and(&mut self, nesting: usize) -> Result<Parsed, Problem> {
        self.chain(nesting, &Token::And, Self::unary, LabelExpr::And)
    }

    /// `operand (op operand)*` as one n-ary node (or the lone operand).
    fn chain(
        &mut self,
        nesting: usize,
        op: &Token,
        operand: fn(&mut Self, usize) -> Result<Parsed, Problem>,
        node: fn(Vec<LabelExpr>) -> LabelExpr,
    ) -> Result<Parsed, Problem> {
        let first = operand(self, nesting)?;
        let Some(at) = self.eat(op) else {
            return Ok(first);
        };
        let mut depth = first.depth;
        let mut operands = vec![first.expr];
        loop {
            let next = operand(self, nesting)?;
            depth = depth.max(next.depth);
            operands.push(next.expr);
            if self.eat(op).is_none() {
                break;
            }
        }
        Ok(Parsed {
            expr: node(operands),
            depth: self.deeper(at, depth)?,
        })
    }

    fn unary(&mut self, nesting: usize) -> Result<Parsed, Problem> {
        let Some((token, at)) = self.tokens.get(self.next).cloned() else {
            return Err(self.expected_label(None));
        };
        match token {
            Token::Atom(label) => {
                self.next += 1;
                Ok(Parsed {
                    expr: LabelExpr::Atom(label),
                    depth: 0,
                })
            }
            Token::Not => {
                let nesting = self.nest(at, nesting)?;
                self.next += 1;
                let inner = self.unary(nesting)?;
                Ok(Parsed {
                    expr: LabelExpr::Not(Box::new(inner.expr)),
                    depth: self.deeper(at, inner.depth)?,
                })
            }
            Token::Open => {
                let nesting = self.nest(at, nesting)?;
                self.next += 1;
                let inner = self.iff(nesting)?;
                match self.tokens.get(self.next) {
                    Some((Token::Close, _)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(found) => Err(self.expected_operator(found)),
                    None => Err(Problem::Unclosed {
                        at: self.position(Some(at)),
                    }),
                }
            }
            other => Err(self.expected_label(Some((other, at)))),
        }
    }

    /// Consumes the next token if it is `token`, returning its offset.
    fn eat(&mut self, token: &Token) -> Option<usize> {
        match self.tokens.get(self.next) {
            Some((t, at)) if t == token => {
                self.next += 1;
                Some(*at)
            }
            _ => None,
        }
    }

    /// One more level of `!` or parentheses, opened by the token at `at`.
    fn nest(&self, at: usize, nesting: usize) -> Result<usize, Problem> {
        if nesting >= MAX_LABEL_EXPR_DEPTH {
            return Err(Problem::TooDeep {
                at: self.position(Some(at)),
            });
        }
        Ok(nesting + 1)
    }

    /// The depth of an operator (at `at`) over operands at most `operands` deep.
    fn deeper(&self, at: usize, operands: usize) -> Result<usize, Problem> {
        if operands >= MAX_LABEL_EXPR_DEPTH {
            return Err(Problem::TooDeep {
                at: self.position(Some(at)),
            });
        }
        Ok(operands + 1)
    }

    fn previous(&self) -> Option<String> {
        let previous = self.next.checked_sub(1)?;
        self.tokens.get(previous).map(|(t, _)| t.to_string())
    }

    fn expected_label(&self, found: Option<(Token, usize)>) -> Problem {
        Problem::ExpectedLabel {
            after: self.previous(),
            at: self.position(found.as_ref().map(|(_, at)| *at)),
            found: found.map(|(t, _)| t.to_string()),
        }
    }

    /// `found` cannot follow the previous token.
    fn expected_operator(&self, (found, at): &(Token, usize)) -> Problem {
        Problem::ExpectedOperator {
            after: self.previous().unwrap_or_default(),
            found: found.to_string(),
            at: self.position(Some(*at)),
        }
    }

    fn position(&self, at: Option<usize>) -> Position {
        position(self.text, at)
    }
}
