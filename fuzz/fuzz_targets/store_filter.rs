//! The DataStore's filter and query parsers on any JSON (`Filter::from_json`, as
//! `datastore.query` and `datastore.count` read their `filter`; `Query::from_json`),
//! then the SQL the store would run, for SQLite and for PostgreSQL: the filter's
//! `WHERE` and a query's whole `SELECT` (`Query::plan`: its bounds checked and its
//! cursor decoded, then `QueryPlan::statement`).
//!
//! Checked: nothing panics; a refusal is a typed `InvalidFilter` or
//! `InvalidArgument`; a parsed filter written back as JSON parses to itself; in the
//! SQL, quotes and parentheses balance, what is quoted is a path or a type name and
//! never a value, every `$N` has a parameter and every parameter a `$N`, and no text
//! parameter holds U+0000 (PostgreSQL cannot bind it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_store::postgres::PostgresDialect;
use plexus_store::sqlite::SqliteDialect;
use plexus_store::{Dialect, Filter, Param, Query, SqlBuilder, Statement, StoreConfig, StoreError};
use serde_json::Value;

const TABLE: &str = "\"ds_docs\"";

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let dialects: [&dyn Dialect; 2] = [&SqliteDialect, &PostgresDialect];
    match Filter::from_json(&value) {
        Ok(filter) => {
            let again = Filter::from_json(&filter.to_json());
            assert_eq!(again.as_ref().ok(), Some(&filter), "{}", filter.to_json());
            for dialect in dialects {
                let mut b = SqlBuilder::new(dialect);
                b.push("SELECT COUNT(*) FROM ")
                    .push(TABLE)
                    .push(" WHERE ")
                    .filter(&filter);
                check_sql(&b.finish());
            }
        }
        Err(e) => assert!(matches!(e, StoreError::InvalidFilter { .. }), "{e:?}"),
    }
    match Query::from_json(&value) {
        Ok(query) => match query.plan(&StoreConfig::default()) {
            Ok(plan) => {
                for dialect in dialects {
                    check_sql(&plan.statement(TABLE, dialect));
                }
            }
            Err(e) => typed(&e),
        },
        Err(e) => typed(&e),
    }
});

fn typed(e: &StoreError) {
    assert!(
        matches!(
            e,
            StoreError::InvalidFilter { .. } | StoreError::InvalidArgument { .. }
        ),
        "{e:?}"
    );
}

/// The statement's SQL is the store's own text around checked names, and its values
/// are all bound.
fn check_sql(stmt: &Statement) {
    let sql = stmt.sql.as_bytes();
    let mut depth = 0usize;
    let mut used = vec![false; stmt.params.len()];
    let mut i = 0;
    while i < sql.len() {
        match sql[i] {
            b'\'' | b'"' => {
                let quote = sql[i];
                let end = sql[i + 1..]
                    .iter()
                    .position(|&c| c == quote)
                    .map(|n| i + 1 + n)
                    .unwrap_or_else(|| panic!("an unclosed quote in {}", stmt.sql));
                let quoted = &sql[i + 1..end];
                assert!(
                    quoted
                        .iter()
                        .all(|&c| c.is_ascii_alphanumeric() || b"_.,${}".contains(&c)),
                    "quoted text that is not a path or a name: {}",
                    String::from_utf8_lossy(quoted)
                );
                i = end + 1;
                continue;
            }
            b'(' => depth += 1,
            b')' => depth = depth.checked_sub(1).expect("parentheses balance"),
            b'$' => {
                let digits = sql[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                assert!(digits > 0, "a `$` outside quotes that is not a placeholder");
                let n: usize = std::str::from_utf8(&sql[i + 1..i + 1 + digits])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .expect("a placeholder number");
                assert!(
                    n >= 1 && n <= used.len(),
                    "${n} of {} parameters",
                    used.len()
                );
                used[n - 1] = true;
                i += 1 + digits;
                continue;
            }
            b';' | b'\\' | b'\0' => panic!("{:?} in {}", sql[i] as char, stmt.sql),
            b'-' if sql.get(i + 1) == Some(&b'-') => panic!("a comment in {}", stmt.sql),
            _ => {}
        }
        i += 1;
    }
    assert_eq!(depth, 0, "parentheses balance");
    assert!(used.iter().all(|u| *u), "a parameter no placeholder names");
    for param in &stmt.params {
        match param {
            Param::Text(t) | Param::Json(t) => {
                assert!(!t.contains('\0'), "a text parameter holding U+0000")
            }
            Param::Float(f) => assert!(f.is_finite()),
            Param::Int(_) | Param::Null => {}
        }
    }
}
