//! [`Dsl::ask`]: a request in plain language turned into a program by a model of
//! the InferenceEngine (`inference.chat`, called through the call path as the
//! caller, so its scopes and budget apply), then read and checked like any other
//! program.
//!
//! The model is shown the grammar and only the verbs the caller may call (their
//! descriptions and params schemas, within `dsl.ask_max_prompt_bytes`; the `dsl`
//! and `inference` services are never offered). Its answer (a fenced block is
//! taken out of any prose around it) is checked against the whole registry and the
//! caller's scopes: a program that fails is never run. Its errors are sent back
//! once for a repair when asked, and the answer to that is checked again. Only a
//! program that passes is run, and only when the caller says so ([`Ask::run`]).

use plexus_core::CallContext;
use plexus_core::scope::Caller;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::run::{Dsl, DslError, Ran};

/// The name an asked program has in its diagnostics.
pub const ASKED: &str = "asked";

/// The method `dsl.ask` calls.
pub const CHAT_METHOD: &str = "inference.chat";

/// Services a model is never offered: the language itself and the model's own.
const NOT_OFFERED: [&str; 2] = ["dsl.", "inference."];

/// What the model is told before the verbs.
const GRAMMAR: &str = "You translate requests into one program of the Plexus command language. \
Answer with the program only: no explanation, no code fence.\n\
A program is one or more forms. A form is (service.method :key value ...). \
Values: \"strings\" (with \\\" and \\\\ escapes), integers, decimals, true, false, nil, \
:keywords, vectors [a b], maps {:key value}, and nested forms whose result is the value. \
(let [name (form) ...] body ...) binds results to names; (do form ...) runs forms in order; \
; starts a comment. Use only the verbs below, with the keys their params schema allows.\n\
The verbs (method: description; params JSON Schema):\n";

/// One `dsl.ask` request.
#[derive(Clone, Debug)]
pub struct Ask {
    /// What the caller wants, in plain language.
    pub request: String,
    /// The model to ask; `dsl.ask_model` when `None`.
    pub model: Option<String>,
    /// Send a refused program back once with its errors; `dsl.ask_repair` when `None`.
    pub repair: Option<bool>,
    /// Run the program when it passes its check.
    pub run: bool,
}

/// What `dsl.ask` gave.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Asked {
    /// The program the model proposed last (the repair, when there was one).
    pub program: String,
    /// Whether it passed its check (and so may run).
    pub ok: bool,
    /// Its problems when it did not, as `dsl.check` reports them.
    pub errors: Vec<Value>,
    /// The first program's problems, when it was sent back for a repair.
    pub repaired_errors: Vec<Value>,
    /// How many answers the model gave (1, or 2 after a repair).
    pub attempts: u32,
    /// The model asked.
    pub model: String,
    /// How many verbs the model was shown.
    pub verbs_offered: usize,
    /// Verbs the caller may call that did not fit in `dsl.ask_max_prompt_bytes`.
    pub verbs_left_out: usize,
    /// What running it gave, when it was asked to run and passed.
    pub ran: Option<Ran>,
}

/// The system prompt: the grammar and the verbs `caller` may call, within
/// `max_bytes`; with how many were shown and left out.
pub fn prompt(
    catalog: &Catalog,
    caller: Option<&Caller>,
    max_bytes: usize,
) -> (String, usize, usize) {
    let mut text = GRAMMAR.to_owned();
    let (mut offered, mut left_out) = (0, 0);
    let callable = catalog
        .verbs()
        .filter(|v| !NOT_OFFERED.iter().any(|p| v.method.starts_with(p)))
        .filter(|v| caller.is_none_or(|c| c.may_call(&v.method)));
    for verb in callable {
        let line = format!("{}: {}; {}\n", verb.method, verb.description, verb.params);
        if text.len() + line.len() > max_bytes {
            left_out += 1;
            continue;
        }
        text.push_str(&line);
        offered += 1;
    }
    (text, offered, left_out)
}

/// The program in a model's answer: the first fenced block when there is one,
/// else the whole answer, trimmed.
pub fn program_of(answer: &str) -> &str {
    let Some((_, after)) = answer.split_once("```") else {
        return answer.trim();
    };
    // The fence's first line may name a language (```lisp).
    let body = after.split_once('\n').map_or(after, |(_, rest)| rest);
    body.split_once("```")
        .map_or(body, |(inside, _)| inside)
        .trim()
}

impl Dsl {
    /// Asks a model for a program doing `ask.request`, checks it as the caller of
    /// `ctx` (sending it back once with its errors when asked to repair), and runs
    /// it when it passes and `ask.run` is set.
    pub async fn ask(&self, ask: Ask, ctx: CallContext) -> Result<Asked, DslError> {
        let config = self.config();
        if ask.request.len() > config.ask_max_request_bytes {
            return Err(DslError::RequestTooLarge {
                bytes: ask.request.len(),
                max: config.ask_max_request_bytes,
            });
        }
        let node = self.node()?;
        let catalog = self.catalog()?;
        let caller = ctx.scopes.clone().map(|s| Caller::new("asker", s));
        let (system, verbs_offered, verbs_left_out) =
            prompt(&catalog, caller.as_ref(), config.ask_max_prompt_bytes);
        let model = ask.model.unwrap_or_else(|| config.ask_model.clone());
        let repair = ask.repair.unwrap_or(config.ask_repair);
        let mut messages = vec![
            json!({"role": "system", "content": system}),
            json!({"role": "user", "content": ask.request}),
        ];
        let mut asked = Asked {
            program: String::new(),
            ok: false,
            errors: Vec::new(),
            repaired_errors: Vec::new(),
            attempts: 0,
            model: model.clone(),
            verbs_offered,
            verbs_left_out,
            ran: None,
        };
        loop {
            let request = json!({"model": model, "messages": messages, "temperature": 0});
            let answer = node
                .call(CHAT_METHOD, request, ctx.clone())
                .await
                .map_err(|e| DslError::Inference {
                    model: model.clone(),
                    error: Box::new(e),
                })?;
            asked.attempts += 1;
            let content = answer
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .ok_or_else(|| DslError::NoAnswer {
                    model: model.clone(),
                })?;
            asked.program = program_of(content).to_owned();
            match self.check_in(&catalog, ASKED, &asked.program, &[], &ctx) {
                Ok(_) => break,
                Err(DslError::Rejected(diags)) => {
                    let errors = diags.to_json().as_array().cloned().unwrap_or_default();
                    if !repair || asked.attempts > 1 {
                        asked.errors = errors;
                        return Ok(asked);
                    }
                    asked.repaired_errors = errors;
                    messages.push(json!({"role": "assistant", "content": content}));
                    messages.push(json!({"role": "user", "content": format!(
                        "That program was refused, nothing ran:\n{}\nAnswer with the corrected program only.",
                        diags.render()
                    )}));
                }
                Err(e) => return Err(e),
            }
        }
        asked.ok = true;
        if ask.run {
            asked.ran = Some(self.run(ASKED, &asked.program, ctx).await?);
        }
        Ok(asked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use plexus_core::scope::Scope;

    use super::*;
    use crate::Verb;

    #[test]
    fn the_program_is_taken_out_of_a_fence_or_the_whole_answer() {
        assert_eq!(program_of("  (a.b :c 1)\n"), "(a.b :c 1)");
        assert_eq!(
            program_of("Here it is:\n```lisp\n(a.b :c 1)\n```\nDone."),
            "(a.b :c 1)"
        );
        assert_eq!(program_of("```\n(a.b)\n```"), "(a.b)");
        assert_eq!(program_of("```lisp\n(a.b)"), "(a.b)", "an unclosed fence");
    }

    #[test]
    fn the_prompt_offers_only_what_the_caller_may_call_within_its_size() {
        let any = json!(true);
        let catalog = [
            "case.create",
            "case.get",
            "dsl.run",
            "inference.chat",
            "datastore.put",
        ]
        .into_iter()
        .fold(Catalog::new(), |c, m| {
            c.with(Verb::new(m, "does it", &any).unwrap())
        });
        let scopes: Arc<[Scope]> = ["call:case.*", "call:dsl.*", "call:inference.*"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let caller = Caller::new("t", scopes);
        let (text, offered, left_out) = prompt(&catalog, Some(&caller), 1 << 16);
        assert_eq!((offered, left_out), (2, 0));
        assert!(text.contains("case.create: does it; true\n"), "{text}");
        assert!(!text.contains("datastore.put") && !text.contains("dsl.run"));
        let (_, offered, left_out) = prompt(&catalog, None, GRAMMAR.len() + 30);
        assert_eq!((offered, left_out), (1, 2));
    }
}
