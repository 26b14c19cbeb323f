//! `plexus repl`: the command language, one program at a time, on a running node.
//!
//! Each program (a line, or several lines until its brackets close) is sent to
//! `dsl.run` and its value printed; a program the check refuses prints its
//! problems with the source line and caret, and nothing of it ran. Tab completes
//! verbs (`datastore.p` → `datastore.put`) and, inside a form, its keys (`:coll` →
//! `:collection`), from the node's live registry as `dsl.verbs` gives it for the
//! token (`:reload` asks again). History is kept in a file (`--history`, at most
//! `--history-size` entries). A `let` without a body, `(let [c (case.get :case-id
//! "C-1")])`, binds its names for the rest of the session: every later program is
//! run with them (`dsl.run`'s `bindings`); `:bindings` lists them and `:forget NAME`
//! (or `:forget` for all) lets them go. `:verbs` lists the verbs, `:help` the commands,
//! `:quit` or end of input ends it. Without a terminal (stdin piped) it reads the
//! programs line by line, so a script can drive it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use plexus_client::Client;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Editor, Helper};
use serde_json::{Value, json};

use crate::remote::{Remote, print_value};
use crate::run::run_bound;

/// The special forms, completed beside the verbs.
const SPECIAL: [&str; 3] = ["let", "do", "transaction"];

/// Arguments of `plexus repl`.
#[derive(Debug, Args)]
pub(crate) struct ReplArgs {
    /// The history file (default `$HOME/.plexus_history`; none without `HOME`).
    #[arg(long)]
    history: Option<PathBuf>,
    /// The most entries kept in the history.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    history_size: u32,
    /// The longest program read, in lines, before it is dropped as unbalanced.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_lines: u32,
    #[command(flatten)]
    remote: Remote,
}

/// What completes: verbs and their keys, as the node gave them.
#[derive(Debug, Default)]
pub(crate) struct Completion {
    verbs: BTreeMap<String, Vec<String>>,
}

impl Completion {
    /// From `dsl.verbs`'s answer.
    pub(crate) fn of(listed: &Value) -> Self {
        let verbs = listed["verbs"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                let keys = v["keys"]
                    .as_array()
                    .map(|k| {
                        k.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                Some((v["method"].as_str()?.to_owned(), keys))
            })
            .collect();
        Self { verbs }
    }

    /// Where the word before `pos` starts, and what it may become.
    pub(crate) fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = line.get(..pos).unwrap_or(line);
        let start = before
            .rfind(|c: char| c.is_whitespace() || "()[]{}\"".contains(c))
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        if let Some(key) = word.strip_prefix(':') {
            let keys = open_verb(&before[..start])
                .and_then(|verb| self.verbs.get(verb))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let found = keys
                .iter()
                .filter(|k| k.starts_with(key))
                .map(|k| format!(":{k}"))
                .collect();
            return (start, found);
        }
        if !before[..start].ends_with('(') {
            return (start, Vec::new());
        }
        let mut found: Vec<String> = SPECIAL
            .iter()
            .map(|s| (*s).to_owned())
            .chain(self.verbs.keys().cloned())
            .filter(|v| v.starts_with(word))
            .collect();
        found.sort();
        (start, found)
    }
}

/// The verb of the innermost form still open at the end of `text`.
fn open_verb(text: &str) -> Option<&str> {
    let mut opens = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') | (false, '"') => in_string = !in_string,
            (false, '(') => opens.push(i + 1),
            (false, ')') => {
                opens.pop();
            }
            _ => {}
        }
    }
    let rest = text.get(*opens.last()?..)?;
    rest.split(|c: char| c.is_whitespace() || "()[]{}".contains(c))
        .next()
        .filter(|v| !v.is_empty())
}

/// Whether `text`'s brackets are all closed (strings and comments skipped).
pub(crate) fn balanced(text: &str) -> bool {
    let (mut depth, mut in_string, mut escaped, mut comment) = (0i64, false, false, false);
    for c in text.chars() {
        match c {
            _ if comment => comment = c != '\n',
            _ if in_string && escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if in_string => {}
            ';' => comment = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    depth <= 0 && !in_string
}

/// The editor's helper: completion only.
struct Repl {
    completion: Completion,
}

impl Completer for Repl {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.completion.candidates(line, pos))
    }
}

impl Hinter for Repl {
    type Hint = String;
}
impl Highlighter for Repl {}
impl Validator for Repl {}
impl Helper for Repl {}

const HELP: &str = "A program per line (or until its brackets close), run with dsl.run.\n\
:verbs  the verbs this token may call, with their keys\n\
:bindings  the names kept by `(let [name (form)])` entries, with their values\n\
:forget NAME  let a kept name go (`:forget` alone: all of them)\n\
:reload ask the node for its verbs again\n\
:help   this\n\
:quit   end (so does end of input)";

/// `plexus repl`.
pub(crate) fn run(args: &ReplArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let verbs = |client: &Client| runtime.block_on(client.call("dsl.verbs", json!({})));
    let config = Config::builder()
        .max_history_size(args.history_size as usize)
        .context("the history size")?
        .auto_add_history(false)
        .build();
    let mut editor: Editor<Repl, FileHistory> =
        Editor::with_config(config).context("starting the line editor")?;
    editor.set_helper(Some(Repl {
        completion: Completion::of(&verbs(&client)?),
    }));
    let history = args
        .history
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".plexus_history")));
    if let Some(path) = &history {
        // A missing history file is the first session.
        let _ = editor.load_history(path);
    }
    let mut program = String::new();
    let mut lines = 0u32;
    // The names `let`s without a body kept for the session, with their values.
    let mut bindings = serde_json::Map::new();
    loop {
        let prompt = if program.is_empty() {
            "plexus> "
        } else {
            "   ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                program.clear();
                lines = 0;
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading a line"),
        };
        if program.is_empty() {
            match line.trim() {
                "" => continue,
                ":quit" | ":q" => break,
                ":help" => {
                    out!("{HELP}");
                    continue;
                }
                ":verbs" => {
                    if let Some(helper) = editor.helper() {
                        for (verb, keys) in &helper.completion.verbs {
                            out!(
                                "{verb} {}",
                                keys.iter()
                                    .map(|k| format!(":{k}"))
                                    .collect::<Vec<_>>()
                                    .join(" ")
                            );
                        }
                    }
                    continue;
                }
                ":bindings" => {
                    print_value(&Value::Object(bindings.clone()), args.remote.json);
                    continue;
                }
                forget if forget == ":forget" || forget.starts_with(":forget ") => {
                    let names: Vec<&str> = forget.split_whitespace().skip(1).collect();
                    if names.is_empty() {
                        bindings.clear();
                    }
                    for name in names {
                        if bindings.remove(name).is_none() {
                            eprintln!("error: `{name}` is not bound (see :bindings)");
                        }
                    }
                    continue;
                }
                ":reload" => {
                    match verbs(&client) {
                        Ok(listed) => {
                            let completion = Completion::of(&listed);
                            out!("{} verbs", completion.verbs.len());
                            editor.set_helper(Some(Repl { completion }));
                        }
                        Err(e) => eprintln!("error: {e}"),
                    }
                    continue;
                }
                _ => {}
            }
        }
        program.push_str(&line);
        program.push('\n');
        lines += 1;
        if !balanced(&program) {
            if lines >= args.max_lines {
                eprintln!(
                    "error: the program is longer than {} lines; dropped",
                    args.max_lines
                );
                program.clear();
                lines = 0;
            }
            continue;
        }
        let _ = editor.add_history_entry(program.trim_end());
        match runtime.block_on(run_bound(&client, &program, "repl", &bindings)) {
            Ok(ran) => {
                if let Some(kept) = ran["bound"].as_object() {
                    bindings.extend(kept.clone());
                }
                print_value(&ran["value"], args.remote.json);
            }
            // Its problems are printed already; nothing ran.
            Err(e) => eprintln!("error: {e:#}"),
        }
        program.clear();
        lines = 0;
    }
    if let Some(path) = &history {
        editor
            .save_history(path)
            .with_context(|| format!("saving the history to {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Completion {
        Completion::of(&json!({"verbs": [
            {"method": "datastore.put", "keys": ["collection", "doc", "id"]},
            {"method": "datastore.patch", "keys": ["collection", "id", "patch"]},
            {"method": "case.create", "keys": ["case-id", "case-type"]},
        ]}))
    }

    #[test]
    fn verbs_complete_after_an_opening_bracket() {
        let c = completion();
        assert_eq!(
            c.candidates("(datastore.p", 12),
            (
                1,
                vec!["datastore.patch".to_owned(), "datastore.put".to_owned()]
            )
        );
        assert_eq!(
            c.candidates("(d", 2),
            (
                1,
                vec![
                    "datastore.patch".to_owned(),
                    "datastore.put".to_owned(),
                    "do".to_owned()
                ]
            )
        );
        assert_eq!(
            c.candidates("(let [x (ca", 11),
            (9, vec!["case.create".to_owned()])
        );
        assert_eq!(
            c.candidates("datastore", 9).1,
            Vec::<String>::new(),
            "not a verb's place"
        );
    }

    #[test]
    fn keys_complete_for_the_innermost_open_form() {
        let c = completion();
        assert_eq!(
            c.candidates("(case.create :case-", 19),
            (13, vec![":case-id".to_owned(), ":case-type".to_owned()])
        );
        let line = "(datastore.put :collection \"a (b\" :doc {:x (case.create :case-id \"1\")} :i";
        assert_eq!(c.candidates(line, line.len()).1, vec![":id".to_owned()]);
        assert_eq!(c.candidates("(nope.verb :c", 13).1, Vec::<String>::new());
    }

    #[test]
    fn a_program_is_complete_when_its_brackets_close() {
        assert!(balanced("(a.b :c 1)\n"));
        assert!(!balanced("(let [x (a.b)]\n"));
        assert!(balanced("(a.b :s \"(\" ) ; (\n"));
        assert!(!balanced("(a.b :s \"\\\")\""));
    }
}
