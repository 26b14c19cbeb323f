//! Reading, printing and checking programs, without a node.

use plexus_core::scope::Scope;
use plexus_dsl::{
    Catalog, Checker, Code, Diagnostics, Expr, Key, Kind, Limits, Number, Program, Span, Verb,
    check, parse, print,
};
use proptest::prelude::*;
use serde_json::json;
use std::sync::Arc;

fn catalog() -> Catalog {
    let create = json!({"type": "object", "properties": {
        "case-id": {"type": "string", "minLength": 1},
        "case-type": {"type": "string", "enum": ["kyc", "fraud"]},
        "amount": {"type": "number"}},
        "required": ["case-id", "case-type"], "additionalProperties": false});
    let get = json!({"type": "object", "properties": {"case-id": {"type": "string"}},
        "required": ["case-id"], "additionalProperties": false});
    Catalog::new()
        .with(Verb::new("case.create", "", &create).unwrap())
        .with(Verb::new("case.get", "", &get).unwrap())
        .with(Verb::new("case.close", "", &get).unwrap())
        .with(Verb::new("datastore.put", "", &json!(true)).unwrap())
        .with(Verb::new("datastore.transaction", "", &json!(true)).unwrap())
}

fn problems(
    source: &str,
    scopes: Option<&Arc<[Scope]>>,
) -> (Vec<plexus_dsl::Diagnostic>, Diagnostics) {
    let catalog = catalog();
    let program = parse(source, Limits::default()).unwrap();
    let found = check(
        &program,
        Checker {
            catalog: &catalog,
            scopes,
            max_calls: 10,
        },
    );
    let diags = Diagnostics::new("program.plx", source, found.clone());
    (found, diags)
}

#[test]
fn a_good_program_has_no_problem() {
    let source = r#"
; open a case, then read it back
(let [c (case.create :case-id "C-1" :case-type :kyc :amount 12.5)]
  (do (case.get :case-id "C-1")
      c))
(transaction (datastore.put :collection "cases" :id "C-1" :doc {:state "open"}))
"#;
    let (found, _) = problems(source, None);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn every_problem_is_collected_with_line_column_source_line_and_caret() {
    let source = "(case.create :case-id \"C-1\")\n(case.craete :case-id \"C-2\" :case-type :kyc)\n(case.get :case_id \"C-3\")\n(case.create :case-id 7 :case-type :other)\n(case.get :case-id x)";
    let (found, diags) = problems(source, None);
    let codes: Vec<_> = found.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        [
            Code::InvalidParams, // case-type missing
            Code::UnknownVerb,
            Code::InvalidParams, // :case-id missing
            Code::InvalidParams, // :case_id unknown
            Code::InvalidParams, // 7 not a string
            Code::InvalidParams, // :other not in the enum
            Code::Unbound,
        ],
        "{found:#?}"
    );
    let json = diags.to_json();
    assert_eq!(json[0]["line"], 1);
    assert!(json[0]["message"].as_str().unwrap().contains(":case-type"));
    assert_eq!(
        (json[1]["line"].as_u64(), json[1]["column"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(json[1]["help"], "did you mean `case.create`?");
    assert!(
        json[2]["message"]
            .as_str()
            .unwrap()
            .contains("needs `:case-id`")
    );
    assert_eq!(json[3]["help"], "did you mean `:case-id`?");
    assert_eq!(
        (json[4]["line"].as_u64(), json[4]["column"].as_u64()),
        (Some(4), Some(23))
    );
    let rendered = json[1]["rendered"].as_str().unwrap();
    assert!(rendered.contains("program.plx:2:2"), "{rendered}");
    assert!(rendered.contains("(case.craete :case-id"), "{rendered}");
    assert!(
        rendered.contains('^') || rendered.contains('─'),
        "{rendered}"
    );
    assert!(diags.render().contains("did you mean `case.create`?"));
}

#[test]
fn scopes_are_checked_before_anything_runs() {
    let scopes: Arc<[Scope]> = Arc::from(vec!["call:case.get".parse::<Scope>().unwrap()]);
    let (found, _) = problems(
        "(case.get :case-id \"a\")\n(case.close :case-id \"a\")\n(transaction (datastore.put :collection \"c\" :id \"a\" :doc {:a 1}))",
        Some(&scopes),
    );
    let forbidden: Vec<_> = found
        .iter()
        .filter(|d| d.code == Code::Forbidden)
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(
        forbidden,
        [
            "the caller may not call `case.close`",
            "the caller may not call `datastore.transaction`"
        ]
    );
}

#[test]
fn forms_are_checked() {
    let (found, _) = problems("()", None);
    assert_eq!(found[0].code, Code::Form);
    let (found, _) = problems("(frobnicate 1)", None);
    assert!(found[0].message.contains("not a verb"));
    let (found, _) = problems("(case.get \"C-1\")", None);
    assert!(found[0].message.contains("expected a key"));
    let (found, _) = problems("(let [a.b 1] a.b)", None);
    assert!(found[0].message.contains("plain name"));
    let (found, _) = problems("(transaction (case.get :case-id \"a\"))", None);
    assert!(found[0].message.contains("only DataStore operations"));
    let (found, _) = problems(
        "(transaction (datastore.put :doc (case.get :case-id \"a\")))",
        None,
    );
    assert!(found[0].message.contains("literal or a `let` name"));
    let (found, _) = problems("(case.get :case-id (case.gt :case-id \"b\"))", None);
    assert_eq!(found[0].code, Code::UnknownVerb);
    // A value known only when the program runs is not held against the schema now.
    let (found, _) = problems("(let [id \"C\"] (case.get :case-id id))", None);
    assert!(found.is_empty());
}

#[test]
fn too_many_calls_is_one_problem() {
    let source = "(case.get :case-id \"a\")\n".repeat(12);
    let (found, _) = problems(&source, None);
    assert_eq!(found.iter().filter(|d| d.code == Code::TooLarge).count(), 1);
    assert_eq!(
        found[0].span.start,
        "(case.get :case-id \"a\")\n".len() * 10 + 1
    );
}

#[test]
fn syntax_errors_render_with_a_caret() {
    let source = "(case.get\n  :case-id \"a)";
    let d = parse(source, Limits::default()).unwrap_err();
    let diags = Diagnostics::new("p", source, vec![d]);
    let json = diags.to_json();
    assert_eq!(
        (json[0]["line"].as_u64(), json[0]["column"].as_u64()),
        (Some(2), Some(12))
    );
    assert!(
        diags
            .to_string()
            .contains("p:2:12: this string is never closed")
    );
}

fn name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_?!-]{0,6}".prop_filter("reserved", |s| {
        !["nil", "true", "false"].contains(&s.as_str())
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    let span = Span::default();
    let leaf = prop_oneof![
        Just(Kind::Nil),
        any::<bool>().prop_map(Kind::Bool),
        any::<i64>().prop_map(|n| Kind::Number(Number::Integer(i128::from(n)))),
        (any::<i32>(), 0u32..1000, -20i32..20)
            .prop_map(|(i, f, e)| Kind::Number(Number::Decimal(format!("{i}.{f}e{e}")))),
        any::<String>().prop_map(Kind::Str),
        name().prop_map(Kind::Keyword),
        name().prop_map(Kind::Symbol),
        (name(), name()).prop_map(|(a, b)| Kind::Symbol(format!("{a}.{b}"))),
    ]
    .prop_map(move |k| Expr::new(k, span));
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Kind::Vector),
            prop::collection::vec(inner.clone(), 0..6).prop_map(Kind::List),
            prop::collection::btree_map(any::<String>(), (inner, any::<bool>()), 0..4).prop_map(
                |m| {
                    Kind::Map(
                        m.into_iter()
                            .map(|(k, (v, kw))| {
                                let keyword = kw && plexus_dsl::valid_name(&k);
                                (
                                    Key {
                                        name: k,
                                        keyword,
                                        span: Span::default(),
                                    },
                                    v,
                                )
                            })
                            .collect(),
                    )
                }
            ),
        ]
        .prop_map(move |k| Expr::new(k, span))
    })
}

proptest! {
    #[test]
    fn printing_then_reading_gives_the_same_program(forms in prop::collection::vec(expr(), 1..5)) {
        let program = Program { forms };
        let text = print(&program);
        let again = parse(&text, Limits::default()).map_err(|d| TestCaseError::fail(format!("{d:?} in {text}")))?;
        prop_assert!(program.same(&again), "{text}");
        prop_assert_eq!(print(&again), text);
    }

    #[test]
    fn reading_any_text_never_panics(text in any::<String>()) {
        let _ = parse(&text, Limits::default());
    }
}
