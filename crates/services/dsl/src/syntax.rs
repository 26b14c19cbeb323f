//! The syntax tree of a program: [`Expr`]essions, each with the [`Span`] of source
//! it was read from, and [`Lines`] to turn a span into a line and column.
//!
//! Equality of expressions ignores spans ([`Expr::same`]), so a program printed and
//! read again compares equal to the one it came from.

use std::fmt;

/// Where an expression is: byte offsets `start..end` into the source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }
}

/// A number as written, kept exact: the literal's text, normalized (no `+`, no
/// leading zeros).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Number {
    /// A whole number that fits an `i64` or a `u64`.
    Integer(i128),
    /// A decimal, its canonical text (`-1.50`, `2e10`).
    Decimal(String),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Integer(n) => write!(f, "{n}"),
            Self::Decimal(text) => f.write_str(text),
        }
    }
}

/// One expression and where it was written.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it is.
    pub kind: Kind,
    /// Where.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Clone, Debug)]
pub enum Kind {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// `42`, `-1.5`.
    Number(Number),
    /// `"text"`.
    Str(String),
    /// `:name`: the string `name` as a value, a key before a value in a call.
    Keyword(String),
    /// A name bound by `let`.
    Symbol(String),
    /// `[a b c]`.
    Vector(Vec<Expr>),
    /// `{:k v "k2" v2}`: keys are keywords or strings.
    Map(Vec<(Key, Expr)>),
    /// `( ... )`: a call, `let`, `do` or `transaction`; checked by the checker.
    List(Vec<Expr>),
}

/// A map key and where it was written.
#[derive(Clone, Debug)]
pub struct Key {
    /// The key's text.
    pub name: String,
    /// Whether it was written as a keyword (`:k`) rather than a string (`"k"`).
    pub keyword: bool,
    /// Where.
    pub span: Span,
}

impl Expr {
    /// An expression of `kind` at `span`.
    pub fn new(kind: Kind, span: Span) -> Self {
        Self { kind, span }
    }

    /// Whether `self` and `other` are the same program text up to layout: spans,
    /// comments and whitespace do not count.
    pub fn same(&self, other: &Self) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Nil, Kind::Nil) => true,
            (Kind::Bool(a), Kind::Bool(b)) => a == b,
            (Kind::Number(a), Kind::Number(b)) => a == b,
            (Kind::Str(a), Kind::Str(b))
            | (Kind::Keyword(a), Kind::Keyword(b))
            | (Kind::Symbol(a), Kind::Symbol(b)) => a == b,
            (Kind::Vector(a), Kind::Vector(b)) | (Kind::List(a), Kind::List(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (Kind::Map(a), Kind::Map(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                        ka.name == kb.name && ka.keyword == kb.keyword && va.same(vb)
                    })
            }
            _ => false,
        }
    }

    /// The symbol's name, when this is one.
    pub fn as_symbol(&self) -> Option<&str> {
        match &self.kind {
            Kind::Symbol(s) => Some(s),
            _ => None,
        }
    }
}

/// A whole program: its top-level forms, run in order.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// The forms.
    pub forms: Vec<Expr>,
}

impl Program {
    /// Whether both programs are the same up to layout ([`Expr::same`]).
    pub fn same(&self, other: &Self) -> bool {
        self.forms.len() == other.forms.len()
            && self.forms.iter().zip(&other.forms).all(|(a, b)| a.same(b))
    }
}

/// Line and column (both from 1; the column counts characters) of byte offsets.
#[derive(Clone, Debug)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    /// The line starts of `source`.
    pub fn new(source: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { starts }
    }

    /// Line and column of byte `offset` of `source`.
    pub fn position(&self, source: &str, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let end = offset.min(source.len());
        let column = source
            .get(start..end)
            .map_or(end.saturating_sub(start), |s| s.chars().count());
        (line, column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let source = "ab\nçd\n\nx";
        let lines = Lines::new(source);
        assert_eq!(lines.position(source, 0), (1, 1));
        assert_eq!(lines.position(source, 1), (1, 2));
        assert_eq!(lines.position(source, 3), (2, 1));
        // `ç` is two bytes, one column.
        assert_eq!(lines.position(source, 5), (2, 2));
        assert_eq!(lines.position(source, 7), (3, 1));
        assert_eq!(lines.position(source, 8), (4, 1));
        assert_eq!(lines.position(source, 9), (4, 2));
    }
}
