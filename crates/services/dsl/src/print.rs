//! The printer: a [`Program`] back to text that reads as the same program
//! ([`Program::same`]): one top-level form per line, strings escaped, numbers as
//! written.

use std::fmt::Write;

use crate::syntax::{Expr, Key, Kind, Program};

/// The program as text, one top-level form per line.
pub fn print(program: &Program) -> String {
    let mut out = String::new();
    for form in &program.forms {
        print_expr(form, &mut out);
        out.push('\n');
    }
    out
}

/// One expression as text.
pub fn print_expr(expr: &Expr, out: &mut String) {
    match &expr.kind {
        Kind::Nil => out.push_str("nil"),
        Kind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Kind::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Kind::Str(s) => print_str(s, out),
        Kind::Keyword(k) => {
            out.push(':');
            out.push_str(k);
        }
        Kind::Symbol(s) => out.push_str(s),
        Kind::Vector(items) => seq('[', ']', items, out),
        Kind::List(items) => seq('(', ')', items, out),
        Kind::Map(pairs) => {
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_key(key, out);
                out.push(' ');
                print_expr(value, out);
            }
            out.push('}');
        }
    }
}

fn seq(open: char, close: char, items: &[Expr], out: &mut String) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        print_expr(item, out);
    }
    out.push(close);
}

fn print_key(key: &Key, out: &mut String) {
    if key.keyword {
        out.push(':');
        out.push_str(&key.name);
    } else {
        print_str(&key.name, out);
    }
}

/// A string literal with its escapes.
pub(crate) fn print_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
