//! Values: a literal expression as JSON, numbers kept exact.
//!
//! An integer becomes a JSON integer. A decimal becomes a JSON number only when an
//! `f64` (what JSON numbers are read as) holds it exactly; otherwise it is refused,
//! naming the literal, rather than silently rounded.

use serde_json::{Map, Number as JsonNumber, Value};

use crate::diag::{Code, Diagnostic};
use crate::syntax::{Expr, Kind, Number};

/// The JSON of `n`, or why it has none.
pub fn number_json(n: &Number) -> Result<Value, String> {
    match n {
        Number::Integer(i) => {
            if let Ok(v) = i64::try_from(*i) {
                Ok(Value::from(v))
            } else {
                u64::try_from(*i)
                    .map(Value::from)
                    .map_err(|_| format!("the integer `{i}` is out of range (64 bits)"))
            }
        }
        Number::Decimal(text) => {
            let f: f64 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a number"))?;
            let exact = f.is_finite() && normalize(text) == normalize(&format!("{f:?}"));
            match JsonNumber::from_f64(f) {
                Some(json) if exact => Ok(Value::Number(json)),
                _ => Err(format!(
                    "the decimal `{text}` has no exact JSON number (64-bit float); nearest is {f:?}"
                )),
            }
        }
    }
}

/// A decimal's value as (negative, significant digits, exponent of the last digit).
fn normalize(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (
            text.get(..i).unwrap_or_default(),
            text.get(i + 1..)
                .and_then(|e| e.parse::<i64>().ok())
                .unwrap_or(0),
        ),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    let mut exp = exp.saturating_sub(i64::try_from(frac.len()).unwrap_or(i64::MAX));
    while digits.ends_with('0') {
        digits.pop();
        exp = exp.saturating_add(1);
    }
    let digits = digits.trim_start_matches('0').to_owned();
    if digits.is_empty() {
        return (false, digits, 0);
    }
    (negative, digits, exp)
}

/// The JSON of a literal expression (no calls, no names inside); `None` when it
/// holds a call or a name, whose value is known only when the program runs.
pub fn literal(expr: &Expr) -> Option<Result<Value, Diagnostic>> {
    let bad = |m: String| Some(Err(Diagnostic::new(Code::InvalidParams, expr.span, m)));
    Some(Ok(match &expr.kind {
        Kind::Nil => Value::Null,
        Kind::Bool(b) => Value::Bool(*b),
        Kind::Number(n) => match number_json(n) {
            Ok(v) => v,
            Err(m) => return bad(m),
        },
        Kind::Str(s) | Kind::Keyword(s) => Value::String(s.clone()),
        Kind::Symbol(_) | Kind::List(_) => return None,
        Kind::Vector(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match literal(item)? {
                    Ok(v) => out.push(v),
                    Err(d) => return Some(Err(d)),
                }
            }
            Value::Array(out)
        }
        Kind::Map(pairs) => {
            let mut out = Map::new();
            for (key, value) in pairs {
                match literal(value)? {
                    Ok(v) => {
                        out.insert(key.name.clone(), v);
                    }
                    Err(d) => return Some(Err(d)),
                }
            }
            Value::Object(out)
        }
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Result<Value, String> {
        number_json(&Number::Decimal(s.into()))
    }

    #[test]
    fn decimals_held_exactly_become_numbers_and_others_are_refused() {
        assert_eq!(dec("1.50").unwrap(), json!(1.5));
        assert_eq!(dec("-2E+3").unwrap(), json!(-2000.0));
        assert_eq!(dec("0.1").unwrap(), json!(0.1));
        assert_eq!(dec("0.0").unwrap(), json!(0.0));
        assert!(
            dec("0.1000000000000000000001")
                .unwrap_err()
                .contains("no exact JSON number")
        );
        assert!(dec("1e400").is_err());
        assert_eq!(number_json(&Number::Integer(-3)).unwrap(), json!(-3));
        assert_eq!(
            number_json(&Number::Integer(i128::from(u64::MAX))).unwrap(),
            json!(u64::MAX)
        );
    }
}
