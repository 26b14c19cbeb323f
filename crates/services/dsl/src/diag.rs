//! [`Diagnostic`]: one problem found in a program before it runs (a syntax error, an
//! unknown verb, params its schema refuses, a verb the caller may not call), with
//! its span; [`Diagnostics`]: all of a program's, rendered with the source line and
//! a caret by [`ariadne`], and as JSON with line and column for machines.

use std::fmt;

use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};
use serde::Serialize;
use serde_json::{Value, json};

use crate::syntax::{Lines, Span};

/// What kind of problem a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The text is not a program (an unclosed bracket, a bad escape, …).
    Syntax,
    /// The program has nothing to run.
    Empty,
    /// The program is larger or deeper than the `[dsl]` limits allow.
    TooLarge,
    /// A form that is not a call, `let`, `do` or `transaction`, or a misuse of one.
    Form,
    /// No registered service has this method.
    UnknownVerb,
    /// A name no `let` binds here.
    Unbound,
    /// The params do not match the method's JSON Schema.
    InvalidParams,
    /// The caller's scopes do not allow the verb.
    Forbidden,
}

impl Code {
    /// Its snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::Empty => "empty",
            Self::TooLarge => "too_large",
            Self::Form => "form",
            Self::UnknownVerb => "unknown_verb",
            Self::Unbound => "unbound",
            Self::InvalidParams => "invalid_params",
            Self::Forbidden => "forbidden",
        }
    }
}

/// One problem, where it is, and what might fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// Its kind.
    pub code: Code,
    /// What is wrong.
    pub message: String,
    /// Where.
    pub span: Span,
    /// A suggestion ("did you mean `case.create`?").
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem of `code` at `span`.
    pub fn new(code: Code, span: Span, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// With a suggestion.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// All the problems of one program, with its source to point into.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    /// The program's name in the rendering (`program`, a file's path).
    pub name: String,
    /// The program's text.
    pub source: String,
    /// The problems, in the order of the source.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// The problems `items` of `source`, named `name`, sorted by position.
    pub fn new(
        name: impl Into<String>,
        source: impl Into<String>,
        mut items: Vec<Diagnostic>,
    ) -> Self {
        items.sort_by_key(|d| (d.span.start, d.span.end));
        items.dedup();
        Self {
            name: name.into(),
            source: source.into(),
            items,
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One problem rendered: `error[code]: message`, then the source line with a
    /// caret under the span, then the help. No colors.
    pub fn render_one(&self, d: &Diagnostic) -> String {
        let end = d.span.end.max(d.span.start).min(self.source.len());
        let start = d.span.start.min(end);
        let name = self.name.as_str();
        let mut report = Report::build(ReportKind::Error, (name, start..end))
            .with_config(
                Config::default()
                    .with_color(false)
                    .with_index_type(IndexType::Byte),
            )
            .with_code(d.code.as_str())
            .with_message(&d.message)
            .with_label(Label::new((name, start..end)).with_message(&d.message));
        if let Some(help) = &d.help {
            report = report.with_help(help);
        }
        let mut out = Vec::new();
        let written = report
            .finish()
            .write((name, Source::from(self.source.as_str())), &mut out);
        match written {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            // Writing to a Vec does not fail; keep a plain line if it ever does.
            Err(_) => format!("error[{}]: {}", d.code.as_str(), d.message),
        }
    }

    /// Every problem rendered, one after the other.
    pub fn render(&self) -> String {
        self.items.iter().map(|d| self.render_one(d)).collect()
    }

    /// As JSON: `[{code, message, line, column, end_line, end_column, help, rendered}]`.
    pub fn to_json(&self) -> Value {
        let lines = Lines::new(&self.source);
        Value::Array(
            self.items
                .iter()
                .map(|d| {
                    let (line, column) = lines.position(&self.source, d.span.start);
                    let (end_line, end_column) = lines.position(&self.source, d.span.end);
                    json!({
                        "code": d.code,
                        "message": d.message,
                        "line": line,
                        "column": column,
                        "end_line": end_line,
                        "end_column": end_column,
                        "help": d.help,
                        "rendered": self.render_one(d),
                    })
                })
                .collect(),
        )
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = Lines::new(&self.source);
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let (line, column) = lines.position(&self.source, d.span.start);
            write!(f, "{}:{line}:{column}: {}", self.name, d.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
