//! `plexus ask "open a KYC case for ACME"`: a running node's `dsl.ask` has a model
//! write a program from the request, offered only the verbs the caller's token may
//! call. The program is printed; one that fails its check is never run (its errors
//! are printed on stderr, status 1); one that passes runs after the person confirms
//! (`--yes` skips the question; without a terminal, no answer is no).

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

/// `plexus ask`.
pub(crate) fn run(args: &AskArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let mut params = json!({"request": args.request.join(" "), "run": args.yes});
    if let Some(model) = &args.model {
        params["model"] = json!(model);
    }
    if args.no_repair {
        params["repair"] = json!(false);
    }
    block_on(async {
        let asked = client.call("dsl.ask", params).await?;
        let program = asked["program"].as_str().unwrap_or_default();
        if args.remote.json {
            print_value(&asked, true);
        } else {
            out!("{program}");
        }
        if asked["ok"] != true {
            return Err(Refused(show(&asked["errors"])).into());
        }
        if args.yes {
            if !args.remote.json {
                print_value(&asked["ran"]["value"], false);
            }
            return Ok(());
        }
        if !confirmed("Run it?") {
            eprintln!("not run");
            return Ok(());
        }
        let ran: Value = run_source(&client, program, "asked").await?;
        let shown = if args.remote.json {
            ran
        } else {
            ran["value"].clone()
        };
        print_value(&shown, args.remote.json);
        Ok(())
    })
}
