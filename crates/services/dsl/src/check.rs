//! The checker: every form of a program is checked before anything runs, and every
//! problem is collected ([`check`]):
//!
//! - a call `(service.method :key value ...)` names a verb of the [`Catalog`] (else
//!   "did you mean" the closest name), its arguments are `:key value` pairs, and its
//!   params match the method's JSON Schema: the literal values are checked now;
//!   a value computed when the program runs (a nested call, a `let` name) is checked
//!   by the call path then, and only the keys it needs are taken as given;
//! - the caller's scopes allow the verb (`call:<method>`);
//! - `(let [name expr ...] body ...)` binds names to values, `(do form ...)`
//!   sequences, `(transaction op ...)` holds only `datastore.put`, `get`, `delete`
//!   and `patch` whose values are literals or names (they run as one
//!   `datastore.transaction` call, which the caller must be allowed);
//! - a name is bound by an enclosing `let`;
//! - the program makes at most `max_calls` calls.

use std::collections::HashSet;
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use plexus_core::scope::{Caller, Scope};
use serde_json::{Map, Value};

use crate::catalog::{Catalog, closest};
use crate::diag::{Code, Diagnostic};
use crate::syntax::{Expr, Kind, Program, Span};
use crate::value::literal;

/// The DataStore operations a `(transaction ...)` may hold.
pub const TRANSACTION_OPS: [&str; 4] = [
    "datastore.put",
    "datastore.get",
    "datastore.delete",
    "datastore.patch",
];

/// The method a `(transaction ...)` runs as.
pub const TRANSACTION_METHOD: &str = "datastore.transaction";

/// The special forms.
pub const SPECIAL_FORMS: [&str; 3] = ["let", "do", "transaction"];

/// What a program is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Checker<'a> {
    /// The verbs.
    pub catalog: &'a Catalog,
    /// The caller's scopes; `None` is unrestricted.
    pub scopes: Option<&'a Arc<[Scope]>>,
    /// The most calls one program may make.
    pub max_calls: usize,
}

/// A form, read.
pub(crate) enum Form<'e> {
    /// `(let [name value ...] body ...)`.
    Let {
        bindings: Vec<(&'e str, Span, &'e Expr)>,
        body: &'e [Expr],
    },
    /// `(do form ...)`.
    Do(&'e [Expr]),
    /// `(transaction op ...)`.
    Transaction(&'e [Expr]),
    /// `(service.method :key value ...)`.
    Call {
        method: &'e str,
        head: Span,
        args: Vec<Arg<'e>>,
    },
}

/// One `:key value` of a call.
pub(crate) struct Arg<'e> {
    pub(crate) key: &'e str,
    pub(crate) key_span: Span,
    pub(crate) value: &'e Expr,
}

/// Reads a list as a form: what it is, or why it is none.
pub(crate) fn form<'e>(items: &'e [Expr], span: Span) -> Result<Form<'e>, Diagnostic> {
    let Some((head, rest)) = items.split_first() else {
        return Err(
            Diagnostic::new(Code::Form, span, "an empty form runs nothing")
                .with_help("write `(service.method :key value ...)`"),
        );
    };
    let Some(name) = head.as_symbol() else {
        return Err(Diagnostic::new(
            Code::Form,
            head.span,
            "a form starts with a verb `service.method`, `let`, `do` or `transaction`",
        ));
    };
    match name {
        "let" => {
            let Some((first, body)) = rest.split_first() else {
                return Err(Diagnostic::new(
                    Code::Form,
                    span,
                    "`let` needs bindings `[name value ...]`",
                ));
            };
            let Kind::Vector(pairs) = &first.kind else {
                return Err(Diagnostic::new(
                    Code::Form,
                    first.span,
                    "`let` needs bindings `[name value ...]`",
                ));
            };
            if pairs.len() % 2 == 1 {
                return Err(Diagnostic::new(
                    Code::Form,
                    first.span,
                    "every name bound by `let` needs a value",
                ));
            }
            let mut bindings = Vec::with_capacity(pairs.len() / 2);
            for pair in pairs.chunks(2) {
                let (Some(n), Some(v)) = (pair.first(), pair.get(1)) else {
                    continue;
                };
                match n.as_symbol() {
                    Some(s) if bindable(s) => bindings.push((s, n.span, v)),
                    _ => {
                        return Err(Diagnostic::new(
                            Code::Form,
                            n.span,
                            "a `let` name is a plain name (no `.`, not `let`, `do` or `transaction`)",
                        ));
                    }
                }
            }
            Ok(Form::Let { bindings, body })
        }
        "do" => Ok(Form::Do(rest)),
        "transaction" => Ok(Form::Transaction(rest)),
        method if method.contains('.') => {
            let mut args: Vec<Arg<'e>> = Vec::with_capacity(rest.len() / 2);
            let mut items = rest.iter();
            while let Some(k) = items.next() {
                let Kind::Keyword(key) = &k.kind else {
                    return Err(
                        Diagnostic::new(Code::Form, k.span, "expected a key `:name` here")
                            .with_help("a call's arguments are `:key value` pairs"),
                    );
                };
                let Some(value) = items.next() else {
                    return Err(Diagnostic::new(
                        Code::Form,
                        k.span,
                        format!("the key `:{key}` has no value"),
                    ));
                };
                if args.iter().any(|a| a.key == key) {
                    return Err(Diagnostic::new(
                        Code::Form,
                        k.span,
                        format!("the key `:{key}` is given twice"),
                    ));
                }
                args.push(Arg {
                    key,
                    key_span: k.span,
                    value,
                });
            }
            Ok(Form::Call {
                method,
                head: head.span,
                args,
            })
        }
        other => Err(Diagnostic::new(
            Code::Form,
            head.span,
            format!(
                "`{other}` is not a verb: a verb is `service.method`; the forms are `let`, `do` and `transaction`"
            ),
        )),
    }
}

/// Every problem of `program`; empty when it may run.
pub fn check(program: &Program, checker: Checker<'_>) -> Vec<Diagnostic> {
    check_with(program, checker, &[])
}

/// [`check`] with `bound` names already bound (the values an earlier program kept,
/// such as a REPL's earlier entries).
pub fn check_with(program: &Program, checker: Checker<'_>, bound: &[&str]) -> Vec<Diagnostic> {
    let mut walk = Walk {
        c: checker,
        caller: checker.scopes.map(|s| Caller::new("program", s.clone())),
        bound: bound.iter().map(|b| (*b).to_owned()).collect(),
        calls: 0,
        problems: Vec::new(),
    };
    for form in &program.forms {
        match lasting_let(form) {
            // Its names stay bound for the rest of the program.
            Some(bindings) => {
                for (name, _, value) in bindings {
                    walk.expr(value, false);
                    walk.bound.push(name.to_owned());
                }
            }
            None => walk.expr(form, false),
        }
    }
    walk.problems
}

/// The bindings of `expr` when it is a `let` without a body, which at the top of a
/// program binds its names for the rest of it (and for whoever keeps them).
pub(crate) fn lasting_let(expr: &Expr) -> Option<Vec<(&str, Span, &Expr)>> {
    let Kind::List(items) = &expr.kind else {
        return None;
    };
    match form(items, expr.span) {
        Ok(Form::Let { bindings, body: [] }) => Some(bindings),
        _ => None,
    }
}

/// Whether `name` may be bound: a plain name (no `.`, not a special form).
pub fn bindable(name: &str) -> bool {
    crate::parse::valid_name(name) && !name.contains('.') && !SPECIAL_FORMS.contains(&name)
}

struct Walk<'a> {
    c: Checker<'a>,
    caller: Option<Caller>,
    /// Names bound here, innermost last.
    bound: Vec<String>,
    calls: usize,
    problems: Vec<Diagnostic>,
}

impl Walk<'_> {
    fn expr(&mut self, expr: &Expr, in_transaction: bool) {
        match &expr.kind {
            Kind::Nil | Kind::Bool(_) | Kind::Str(_) | Kind::Keyword(_) => {}
            Kind::Number(_) => {
                if let Some(Err(d)) = literal(expr) {
                    self.problems.push(d);
                }
            }
            Kind::Symbol(name) => self.name(name, expr.span),
            Kind::Vector(items) => items.iter().for_each(|e| self.expr(e, in_transaction)),
            Kind::Map(pairs) => pairs.iter().for_each(|(_, v)| self.expr(v, in_transaction)),
            Kind::List(items) => {
                if in_transaction {
                    self.problems.push(
                        Diagnostic::new(
                            Code::Form,
                            expr.span,
                            "inside `(transaction ...)` a value is a literal or a `let` name",
                        )
                        .with_help(
                            "run this call before the transaction and bind its result with `let`",
                        ),
                    );
                    return;
                }
                match form(items, expr.span) {
                    Ok(f) => self.form(f, expr.span),
                    Err(d) => self.problems.push(d),
                }
            }
        }
    }

    fn name(&mut self, name: &str, span: Span) {
        if self.bound.iter().any(|b| b == name) {
            return;
        }
        let mut d = Diagnostic::new(
            Code::Unbound,
            span,
            format!("`{name}` is not bound by any `let` here"),
        );
        if let Some(near) = closest(name, self.bound.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{near}`?"));
        } else if self.c.catalog.get(name).is_some() {
            d = d.with_help(format!("to call it, write `({name} ...)`"));
        }
        self.problems.push(d);
    }

    fn form(&mut self, form: Form<'_>, span: Span) {
        match form {
            Form::Let { bindings, body } => {
                let depth = self.bound.len();
                for (name, _, value) in bindings {
                    self.expr(value, false);
                    self.bound.push(name.to_owned());
                }
                body.iter().for_each(|e| self.expr(e, false));
                self.bound.truncate(depth);
            }
            Form::Do(body) => body.iter().for_each(|e| self.expr(e, false)),
            Form::Transaction(ops) => self.transaction(ops, span),
            Form::Call { method, head, args } => self.call(method, head, &args, false),
        }
    }

    fn transaction(&mut self, ops: &[Expr], span: Span) {
        self.allowed(TRANSACTION_METHOD, span);
        if ops.is_empty() {
            self.problems.push(Diagnostic::new(
                Code::Form,
                span,
                "an empty transaction does nothing",
            ));
        }
        for op in ops {
            let parsed = match &op.kind {
                Kind::List(items) => form(items, op.span),
                _ => Err(Diagnostic::new(
                    Code::Form,
                    op.span,
                    "a transaction holds DataStore operations",
                )),
            };
            match parsed {
                Ok(Form::Call { method, head, args }) if TRANSACTION_OPS.contains(&method) => {
                    if let Some(a) = args.iter().find(|a| a.key == "fence") {
                        self.problems.push(Diagnostic::new(
                            Code::Form,
                            a.key_span,
                            "a fence inside a transaction is not supported; fence the whole write with `datastore.transaction`",
                        ));
                    }
                    self.call(method, head, &args, true);
                }
                Ok(_) => self.problems.push(
                    Diagnostic::new(
                        Code::Form,
                        op.span,
                        "a transaction holds only DataStore operations",
                    )
                    .with_help(format!("use {}", TRANSACTION_OPS.join(", "))),
                ),
                Err(d) => self.problems.push(d),
            }
        }
    }

    /// Whether the caller may call `method`; a problem at `span` if not.
    fn allowed(&mut self, method: &str, span: Span) {
        if let Some(caller) = &self.caller
            && !caller.may_call(method)
        {
            self.problems.push(
                Diagnostic::new(
                    Code::Forbidden,
                    span,
                    format!("the caller may not call `{method}`"),
                )
                .with_help(format!("it needs the scope `call:{method}`")),
            );
        }
    }

    fn call(&mut self, method: &str, head: Span, args: &[Arg<'_>], in_transaction: bool) {
        self.calls += 1;
        if self.calls == self.c.max_calls + 1 {
            self.problems.push(
                Diagnostic::new(
                    Code::TooLarge,
                    head,
                    format!("the program makes more than {} calls", self.c.max_calls),
                )
                .with_help("raise `dsl.max_calls`, or split the program"),
            );
        }
        for a in args {
            self.expr(a.value, in_transaction);
        }
        let catalog = self.c.catalog;
        let Some(verb) = catalog.get(method) else {
            let mut d = Diagnostic::new(
                Code::UnknownVerb,
                head,
                format!("no registered service has the verb `{method}`"),
            );
            if let Some(near) = catalog.suggest(method) {
                d = d.with_help(format!("did you mean `{near}`?"));
            }
            self.problems.push(d);
            return;
        };
        if !in_transaction {
            self.allowed(method, head);
        }
        let Some(schema) = &verb.schema else { return };
        let mut params = Map::new();
        let mut dynamic = HashSet::new();
        for a in args {
            match literal(a.value) {
                Some(Ok(v)) => {
                    params.insert(a.key.to_owned(), v);
                }
                Some(Err(_)) => {}
                None => {
                    dynamic.insert(a.key);
                }
            }
        }
        let params = Value::Object(params);
        for error in schema.iter_errors(&params) {
            let mut path: Vec<String> = error
                .instance_path()
                .iter()
                .map(|s| match s {
                    LocationSegment::Property(p) => p.into_owned(),
                    LocationSegment::Index(i) => i.to_string(),
                })
                .collect();
            let reason = match error.kind() {
                ValidationErrorKind::Required { property } => {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_owned);
                    path.push(name);
                    "is required".to_owned()
                }
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for key in unexpected {
                        let mut at = path.clone();
                        at.push(key.clone());
                        self.param_problem(
                            method,
                            head,
                            args,
                            &dynamic,
                            &at,
                            "is not a key of",
                            verb,
                        );
                    }
                    continue;
                }
                _ => error.to_string(),
            };
            self.param_problem(method, head, args, &dynamic, &path, &reason, verb);
        }
    }

    /// One schema error at `path` (JSON pointer segments from the params).
    #[allow(clippy::too_many_arguments)]
    fn param_problem(
        &mut self,
        method: &str,
        head: Span,
        args: &[Arg<'_>],
        dynamic: &HashSet<&str>,
        path: &[String],
        reason: &str,
        verb: &crate::catalog::Verb,
    ) {
        let Some(first) = path.first() else {
            self.problems.push(Diagnostic::new(
                Code::InvalidParams,
                head,
                format!("`{method}`: {reason}"),
            ));
            return;
        };
        if dynamic.contains(first.as_str()) {
            // Known when the program runs; the call path checks it then.
            return;
        }
        let shown = format!(
            ":{}{}",
            first,
            path.iter()
                .skip(1)
                .map(|s| format!("/{s}"))
                .collect::<String>()
        );
        let Some(arg) = args.iter().find(|a| a.key == first) else {
            self.problems.push(Diagnostic::new(
                Code::InvalidParams,
                head,
                if reason == "is required" {
                    format!("`{method}` needs `{shown}`")
                } else {
                    format!("`{method}` needs `{shown}`: {reason}")
                },
            ));
            return;
        };
        let d = if path.len() == 1 && reason == "is not a key of" {
            let mut d = Diagnostic::new(
                Code::InvalidParams,
                arg.key_span,
                format!("`{shown}` {reason} `{method}`"),
            );
            if let Some(near) = closest(first, verb.keys.iter().map(String::as_str)) {
                d = d.with_help(format!("did you mean `:{near}`?"));
            } else if !verb.keys.is_empty() {
                d = d.with_help(format!(
                    "its keys: {}",
                    verb.keys
                        .iter()
                        .map(|k| format!(":{k}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            d
        } else {
            Diagnostic::new(
                Code::InvalidParams,
                locate(arg.value, path.get(1..).unwrap_or_default()),
                format!("`{shown}` {reason}"),
            )
        };
        self.problems.push(d);
    }
}

/// The span of the value at `path` inside `expr`, as deep as the source goes.
fn locate(expr: &Expr, path: &[String]) -> Span {
    let Some((first, rest)) = path.split_first() else {
        return expr.span;
    };
    let inner = match &expr.kind {
        Kind::Map(pairs) => pairs.iter().find(|(k, _)| &k.name == first).map(|(_, v)| v),
        Kind::Vector(items) => first.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    };
    inner.map_or(expr.span, |e| locate(e, rest))
}
