//! The command language: S-expressions `(service.method :key value)` over every
//! registered service, read with exact spans, checked against the registry before
//! anything runs, then run through the call path as the caller. The grammar and
//! examples are in `docs/dsl.md`.
//!
//! - [`parse`]: text to a [`Program`] (values: strings with escapes, exact integers
//!   and decimals, booleans, `nil`, keywords, vectors, maps, nested forms; `;`
//!   comments), every expression with its [`Span`].
//! - [`print`]: a program back to text that reads as the same program.
//! - [`check`]: every form against a [`Catalog`] of verbs (the registry's methods
//!   and their JSON Schemas) and the caller's scopes; all problems collected as
//!   [`Diagnostic`]s, rendered with the source line and a caret ([`Diagnostics`]).
//! - [`value`]: literals as JSON, numbers kept exact.
//! - [`Dsl`]: checks and runs programs on a node, as the caller; [`Dsl::ask`] has a
//!   model of the InferenceEngine write one from plain language ([`Ask`],
//!   [`Asked`]), checked like any other and run only when asked; [`DslService`]
//!   (`dsl.check`, `dsl.run`, `dsl.verbs`, `dsl.ask`) and [`DslFamily`] (the `[dsl]` section,
//!   [`DslConfig`]) put it on the node.
//!
//! ```
//! use plexus_dsl::{Catalog, Checker, Limits, Verb, check, parse};
//! use serde_json::json;
//!
//! let schema = json!({"type": "object", "properties": {"case-id": {"type": "string"}},
//!                     "required": ["case-id"], "additionalProperties": false});
//! let catalog = Catalog::new().with(Verb::new("case.get", "", &schema)?);
//! let checker = Checker { catalog: &catalog, scopes: None, max_calls: 100 };
//! let program = parse("(case.get :case-id \"C-1\")", Limits::default())?;
//! assert!(check(&program, checker).is_empty());
//! let program = parse("(case.gte :case-id 1)", Limits::default())?;
//! let problems = check(&program, checker);
//! assert_eq!(problems[0].help.as_deref(), Some("did you mean `case.get`?"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod ask;
mod catalog;
mod check;
pub mod config;
mod diag;
mod family;
mod parse;
mod print;
mod run;
mod service;
pub mod syntax;
pub mod value;

pub use ask::{ASKED, Ask, Asked, CHAT_METHOD, program_of, prompt};
pub use catalog::{Catalog, SchemaCache, SchemaError, Verb, closest};
pub use check::{
    Checker, SPECIAL_FORMS, TRANSACTION_METHOD, TRANSACTION_OPS, bindable, check, check_with,
};
pub use config::DslConfig;
pub use diag::{Code, Diagnostic, Diagnostics};
pub use family::DslFamily;
pub use parse::{Limits, parse, parse_expr, valid_name};
pub use print::{print, print_expr};
pub use run::{Checked, Dsl, DslError, Ran};
pub use service::DslService;
pub use syntax::{Expr, Key, Kind, Lines, Number, Program, Span};
