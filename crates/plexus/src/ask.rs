//! `plexus ask "open a KYC case for ACME"`: a running node's `dsl.ask` has a model
//! write a program from the request, offered only the verbs the caller's token may
//! call. The program is printed; one that fails its check is never run (its errors
//! are printed on stderr, status 1); one that passes runs after the person confirms
//! (`--yes` skips the question, not the showing; without a terminal, no answer is
//! no).

use std::io::{BufRead, Write};

use clap::Args;
use serde_json::{Value, json};

use crate::remote::{Remote, block_on, print_value};
use crate::run::{Refused, run_source, show};

/// Arguments of `plexus ask`.
#[derive(Debug, Args)]
pub(crate) struct AskArgs {
    /// What to do, in plain language.
    #[arg(required = true, num_args = 1..)]
    request: Vec<String>,
    /// Run the program without asking, when it passes its check.
    #[arg(long, short = 'y')]
    yes: bool,
    /// The model or alias to ask (the node's `dsl.ask_model` without it).
    #[arg(long)]
    model: Option<String>,
    /// Do not send a refused program back to the model for a repair.
    #[arg(long)]
    no_repair: bool,
    #[command(flatten)]
    remote: Remote,
}

/// Whether the person says yes to `question` on stdin (end of input is no).
fn confirmed(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    match std::io::stdin().lock().read_line(&mut answer) {
        Ok(_) => matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"),
        Err(_) => false,
    }
}

/// `plexus ask`. The program is always shown before it runs, also with `--yes`;
/// with `--json`, one object `{asked, ran}` is printed at the end.
pub(crate) fn run(args: &AskArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let mut params = json!({"request": args.request.join(" ")});
    if let Some(model) = &args.model {
        params["model"] = json!(model);
    }
    if args.no_repair {
        params["repair"] = json!(false);
    }
    let json = args.remote.json;
    block_on(async {
        let asked = client.call("dsl.ask", params).await?;
        let program = asked["program"].as_str().unwrap_or_default();
        if !json {
            out!("{program}");
        }
        let report = |ran: Value| {
            if json {
                print_value(&json!({"asked": asked, "ran": ran}), true);
            } else if !ran.is_null() {
                print_value(&ran["value"], false);
            }
        };
        if asked["ok"] != true {
            report(Value::Null);
            return Err(Refused(show(&asked["errors"])).into());
        }
        if !args.yes && !confirmed("Run it?") {
            eprintln!("not run");
            report(Value::Null);
            return Ok(());
        }
        report(run_source(&client, program, "asked").await?);
        Ok(())
    })
}
