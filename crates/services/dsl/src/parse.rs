//! The reader: program text to a [`Program`], every expression with its exact
//! [`Span`]. The grammar is in `docs/dsl.md`.
//!
//! It never panics and never recurses deeper than [`Limits::max_depth`]; text longer
//! than [`Limits::max_bytes`] is refused before reading. The first syntax error ends
//! reading (an unclosed bracket is reported at the bracket that opened it).

use crate::diag::{Code, Diagnostic};
use crate::syntax::{Expr, Key, Kind, Number, Program, Span};

/// How much the reader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest program, in bytes.
    pub max_bytes: usize,
    /// The deepest nesting of brackets.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// Reads `source` as a program.
pub fn parse(source: &str, limits: Limits) -> Result<Program, Diagnostic> {
    if source.len() > limits.max_bytes {
        return Err(Diagnostic::new(
            Code::TooLarge,
            Span::new(0, 0),
            format!(
                "the program is {} bytes, more than the {} allowed",
                source.len(),
                limits.max_bytes
            ),
        )
        .with_help("raise `dsl.max_source_bytes`, or split the program"));
    }
    let mut reader = Reader {
        src: source,
        pos: 0,
        limits,
    };
    let mut forms = Vec::new();
    loop {
        reader.skip_blank();
        if reader.pos >= source.len() {
            break;
        }
        forms.push(reader.expr(0)?);
    }
    if forms.is_empty() {
        return Err(Diagnostic::new(
            Code::Empty,
            Span::new(0, source.len()),
            "the program is empty: there is no form to run",
        )
        .with_help("write a form such as `(case.get :case-id \"C-1\")`"));
    }
    Ok(Program { forms })
}

/// Reads one expression (for tests and tools); trailing text is an error.
pub fn parse_expr(source: &str, limits: Limits) -> Result<Expr, Diagnostic> {
    let program = parse(source, limits)?;
    let mut forms = program.forms.into_iter();
    match (forms.next(), forms.next()) {
        (Some(e), None) => Ok(e),
        (_, Some(extra)) => Err(Diagnostic::new(
            Code::Syntax,
            extra.span,
            "expected one expression",
        )),
        (None, None) => Err(Diagnostic::new(Code::Empty, Span::new(0, 0), "empty")),
    }
}

struct Reader<'a> {
    src: &'a str,
    pos: usize,
    limits: Limits,
}

/// Characters that end a token.
fn delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | '"' | ';' | ',')
}

/// A character a name (a symbol or a keyword's name) may hold.
pub(crate) fn name_char(c: char) -> bool {
    c.is_alphanumeric()
        || matches!(
            c,
            '_' | '-' | '.' | '?' | '!' | '*' | '/' | '+' | '<' | '>' | '='
        )
}

/// Whether `text` is a valid name (a symbol, a keyword after its `:`): starts with a letter or `_`, then name characters.
pub fn valid_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_') && chars.all(name_char)
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, start: usize, message: impl Into<String>) -> Diagnostic {
        let end = self
            .src
            .get(start..)
            .and_then(|s| s.chars().next())
            .map_or(start, |c| start + c.len_utf8());
        Diagnostic::new(Code::Syntax, Span::new(start, end), message)
    }

    /// Whitespace, commas and `;` comments.
    fn skip_blank(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' {
                self.bump();
            } else if c == ';' {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, Diagnostic> {
        let start = self.pos;
        match self.peek() {
            Some(open @ ('(' | '[' | '{')) => {
                if depth >= self.limits.max_depth {
                    return Err(Diagnostic::new(
                        Code::TooLarge,
                        Span::new(start, start + 1),
                        format!("nested deeper than {} brackets", self.limits.max_depth),
                    )
                    .with_help("raise `dsl.max_depth`, or bind inner results with `let`"));
                }
                self.bump();
                let close = match open {
                    '(' => ')',
                    '[' => ']',
                    _ => '}',
                };
                let items = self.items(start, close, depth + 1)?;
                let span = Span::new(start, self.pos);
                let kind = match open {
                    '(' => Kind::List(items),
                    '[' => Kind::Vector(items),
                    _ => Kind::Map(self.pairs(items, span)?),
                };
                Ok(Expr::new(kind, span))
            }
            Some(c @ (')' | ']' | '}')) => {
                Err(self.error(start, format!("unexpected `{c}`: nothing is open here")))
            }
            Some('"') => self.string(),
            Some(_) => self.atom(),
            None => Err(self.error(start, "unexpected end of the program")),
        }
    }

    /// The items up to `close`, the opener being at `open`.
    fn items(&mut self, open: usize, close: char, depth: usize) -> Result<Vec<Expr>, Diagnostic> {
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => {
                    return Err(self
                        .error(
                            open,
                            format!("this bracket is never closed (expected `{close}`)"),
                        )
                        .with_help(format!("add `{close}` at the end of the expression")));
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(c @ (')' | ']' | '}')) => {
                    return Err(self.error(
                        self.pos,
                        format!("`{c}` closes nothing: the bracket open here needs `{close}`"),
                    ));
                }
                Some(_) => items.push(self.expr(depth)?),
            }
        }
    }

    /// A map's items as key/value pairs.
    fn pairs(&self, items: Vec<Expr>, span: Span) -> Result<Vec<(Key, Expr)>, Diagnostic> {
        if items.len() % 2 == 1 {
            return Err(Diagnostic::new(
                Code::Syntax,
                span,
                "a map needs a value after every key",
            ));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(k), Some(v)) = (items.next(), items.next()) {
            let key = match k.kind {
                Kind::Keyword(name) => Key {
                    name,
                    keyword: true,
                    span: k.span,
                },
                Kind::Str(name) => Key {
                    name,
                    keyword: false,
                    span: k.span,
                },
                _ => {
                    return Err(Diagnostic::new(
                        Code::Syntax,
                        k.span,
                        "a map key is a keyword (`:name`) or a string",
                    ));
                }
            };
            if pairs.iter().any(|(p, _): &(Key, Expr)| p.name == key.name) {
                return Err(Diagnostic::new(
                    Code::Syntax,
                    key.span,
                    format!("the key `{}` appears twice in this map", key.name),
                ));
            }
            pairs.push((key, v));
        }
        Ok(pairs)
    }

    fn string(&mut self) -> Result<Expr, Diagnostic> {
        let start = self.pos;
        self.bump();
        let mut text = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => {
                    return Err(self
                        .error(start, "this string is never closed")
                        .with_help("add `\"` at its end"));
                }
                Some('"') => break,
                Some('\\') => {
                    let c = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('0') => '\0',
                        Some('u') => self.unicode(at)?,
                        _ => {
                            return Err(self
                                .error(at, "unknown escape")
                                .with_help(r#"escapes are \" \\ \n \t \r \0 and \u{1F600}"#));
                        }
                    };
                    text.push(c);
                }
                Some(c) => text.push(c),
            }
        }
        Ok(Expr::new(Kind::Str(text), Span::new(start, self.pos)))
    }

    /// The `{XXXX}` after `\u`, the escape starting at `at`.
    fn unicode(&mut self, at: usize) -> Result<char, Diagnostic> {
        let bad = |r: &Self| {
            r.error(
                at,
                "a `\\u` escape is `\\u{` then 1 to 6 hex digits of a character then `}`",
            )
        };
        if self.bump() != Some('{') {
            return Err(bad(self));
        }
        let digits_at = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.bump();
        }
        let digits = self.src.get(digits_at..self.pos).unwrap_or_default();
        if digits.is_empty() || digits.len() > 6 || self.bump() != Some('}') {
            return Err(bad(self));
        }
        u32::from_str_radix(digits, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| bad(self))
    }

    fn atom(&mut self) -> Result<Expr, Diagnostic> {
        let start = self.pos;
        while self.peek().is_some_and(|c| !delimiter(c)) {
            self.bump();
        }
        let span = Span::new(start, self.pos);
        let text = self.src.get(start..self.pos).unwrap_or_default();
        let kind = match text {
            "nil" => Kind::Nil,
            "true" => Kind::Bool(true),
            "false" => Kind::Bool(false),
            _ if text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
                && !valid_name(text) =>
            {
                Kind::Number(number(text).map_err(|m| Diagnostic::new(Code::Syntax, span, m))?)
            }
            _ if text.starts_with(':') => {
                let name = text.get(1..).unwrap_or_default();
                if !valid_name(name) {
                    return Err(Diagnostic::new(
                        Code::Syntax,
                        span,
                        format!(
                            "`{text}` is not a keyword: `:` then a letter or `_`, then letters, digits or `_-.?!*/+<>=`"
                        ),
                    ));
                }
                Kind::Keyword(name.to_owned())
            }
            _ if valid_name(text) => Kind::Symbol(text.to_owned()),
            _ => {
                return Err(Diagnostic::new(
                    Code::Syntax,
                    span,
                    format!("`{text}` is not a value, a keyword or a name"),
                ));
            }
        };
        Ok(Expr::new(kind, span))
    }
}

/// Reads a number literal (JSON's number grammar), exactly.
fn number(text: &str) -> Result<Number, String> {
    let bad = || format!("`{text}` is not a number: write it as JSON does (`-12`, `3.25`, `1e-3`)");
    let bytes = text.as_bytes();
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    let int_start = i;
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = i - int_start;
    if int_digits == 0 || (int_digits > 1 && bytes.get(int_start) == Some(&b'0')) {
        return Err(bad());
    }
    let mut decimal = false;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let at = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == at {
            return Err(bad());
        }
        decimal = true;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let at = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == at {
            return Err(bad());
        }
        decimal = true;
    }
    if i != bytes.len() {
        return Err(bad());
    }
    if decimal {
        return Ok(Number::Decimal(text.to_owned()));
    }
    let n: i128 = text
        .parse()
        .map_err(|_| format!("the integer `{text}` is out of range (64 bits)"))?;
    if n < i128::from(i64::MIN) || n > i128::from(u64::MAX) {
        return Err(format!("the integer `{text}` is out of range (64 bits)"));
    }
    Ok(Number::Integer(n))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn one(source: &str) -> Expr {
        parse_expr(source, Limits::default()).unwrap()
    }

    fn fails(source: &str) -> Diagnostic {
        parse(source, Limits::default()).unwrap_err()
    }

    #[test]
    fn reads_every_kind_of_value_with_its_span() {
        let e = one(
            r#"(case.create :case-id "C-\"1\"\u{e9}" :n -12 :x 1.50 :ok true :v [nil 2] :m {:a 1 "b" :k})"#,
        );
        let Kind::List(items) = &e.kind else { panic!() };
        assert_eq!(items.len(), 13);
        assert_eq!(items[0].as_symbol(), Some("case.create"));
        assert!(matches!(&items[1].kind, Kind::Keyword(k) if k == "case-id"));
        assert!(matches!(&items[2].kind, Kind::Str(s) if s == "C-\"1\"é"));
        assert_eq!(items[2].span, Span::new(22, 37));
        assert!(matches!(items[4].kind, Kind::Number(Number::Integer(-12))));
        assert!(matches!(&items[6].kind, Kind::Number(Number::Decimal(d)) if d == "1.50"));
        assert!(matches!(items[8].kind, Kind::Bool(true)));
        assert!(matches!(&items[10].kind, Kind::Vector(v) if v.len() == 2));
        assert!(matches!(&items[12].kind, Kind::Map(m) if m.len() == 2 && !m[1].0.keyword));
    }

    #[test]
    fn comments_and_commas_are_blank() {
        let p = parse(
            "; a comment\n(a.b) ; another\n, (c.d :k 1,)",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(p.forms.len(), 2);
    }

    #[test]
    fn syntax_errors_point_at_the_cause() {
        let d = fails("(a.b :k \"x)");
        assert_eq!((d.code, d.span.start), (Code::Syntax, 8));
        assert!(d.message.contains("never closed"));
        let d = fails("(a.b (c.d)");
        assert_eq!(d.span, Span::new(0, 1));
        let d = fails("(a.b ]");
        assert_eq!(d.span.start, 5);
        let d = fails(")");
        assert!(d.message.contains("nothing is open"));
        assert!(fails("(a.b \"\\q\")").message.contains("unknown escape"));
        assert!(fails("{:a}").message.contains("value after every key"));
        assert!(fails("{1 2}").message.contains("map key"));
        assert!(fails("{:a 1 :a 2}").message.contains("twice"));
        assert!(fails("01").message.contains("not a number"));
        assert!(fails("1.").message.contains("not a number"));
        assert!(
            fails("99999999999999999999")
                .message
                .contains("out of range")
        );
        assert!(fails(": x").message.contains("not a keyword"));
        assert!(fails("\"\\u{110000}\"").message.contains("\\u"));
        assert!(fails("#x").message.contains("is not a value"));
    }

    #[test]
    fn empty_and_too_large_and_too_deep_are_refused() {
        assert_eq!(fails("").code, Code::Empty);
        assert_eq!(fails("  ; only a comment\n").code, Code::Empty);
        let limits = Limits {
            max_bytes: 10,
            max_depth: 3,
        };
        assert_eq!(
            parse("(a.b :k \"long text\")", limits).unwrap_err().code,
            Code::TooLarge
        );
        let d = parse("[[[[1]]]]", limits).unwrap_err();
        assert_eq!((d.code, d.span.start), (Code::TooLarge, 3));
        assert!(parse("[[[1]]]", limits).is_ok());
    }

    #[test]
    fn numbers_are_kept_exact() {
        assert_eq!(
            number("18446744073709551615"),
            Ok(Number::Integer(i128::from(u64::MAX)))
        );
        assert_eq!(
            number("-9223372036854775808"),
            Ok(Number::Integer(i128::from(i64::MIN)))
        );
        assert_eq!(
            number("0.1000000000000000000001"),
            Ok(Number::Decimal("0.1000000000000000000001".into()))
        );
        assert_eq!(number("-2E+3"), Ok(Number::Decimal("-2E+3".into())));
    }
}
