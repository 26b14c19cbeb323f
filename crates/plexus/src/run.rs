//! `plexus run FILE`: a program of the command language sent to a running node's
//! `dsl.run` (or `dsl.check` with `--check`). A program refused by the check prints
//! each problem with its source line and caret on stderr and exits with status 1;
//! nothing ran.

use std::io::Read;

use anyhow::Context;
use clap::Args;
use plexus_client::{Client, ClientError};
use serde_json::{Map, Value, json};

use crate::remote::{Remote, block_on, print_value};

/// Arguments of `plexus run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The program's file; `-` reads it from stdin.
    file: String,
    /// Only check it (verbs, params, scopes): print its problems, run nothing.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    remote: Remote,
}

/// The program was refused; its problems are printed.
#[derive(Debug, thiserror::Error)]
#[error("the program was refused ({0} problem(s)); nothing ran")]
pub(crate) struct Refused(pub(crate) usize);

/// Prints each problem's rendering on stderr; how many there were.
pub(crate) fn show(errors: &Value) -> usize {
    let errors = errors.as_array().map(Vec::as_slice).unwrap_or_default();
    for e in errors {
        eprint!("{}", e["rendered"].as_str().unwrap_or_default());
    }
    errors.len()
}

/// `plexus run`.
pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let source = if args.file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the program from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file))?
    };
    let client = args.remote.client()?;
    let params = json!({"source": source, "name": args.file});
    block_on(async {
        if args.check {
            let report = client.call("dsl.check", params).await?;
            if report["ok"] != true {
                return Err(Refused(show(&report["errors"])).into());
            }
            print_value(&report, args.remote.json);
            return Ok(());
        }
        let ran = run_source(&client, &source, &args.file).await?;
        let shown = if args.remote.json {
            ran
        } else {
            ran["value"].clone()
        };
        print_value(&shown, args.remote.json);
        Ok(())
    })
}

/// Runs `source` (named `name`) with `dsl.run`: what it gave, or, when the check
/// refused it, [`Refused`] after printing each problem on stderr.
pub(crate) async fn run_source(client: &Client, source: &str, name: &str) -> anyhow::Result<Value> {
    run_bound(client, source, name, &Map::new()).await
}

/// [`run_source`] with `bindings` bound before the program starts.
pub(crate) async fn run_bound(
    client: &Client,
    source: &str,
    name: &str,
    bindings: &Map<String, Value>,
) -> anyhow::Result<Value> {
    let mut params = json!({"source": source, "name": name});
    if !bindings.is_empty() {
        params["bindings"] = Value::Object(bindings.clone());
    }
    match client.call("dsl.run", params).await {
        Ok(ran) => Ok(ran),
        Err(ClientError::Rpc {
            data: Some(data), ..
        }) if data["detail"]["kind"] == "rejected" => {
            Err(Refused(show(&data["detail"]["errors"])).into())
        }
        Err(e) => Err(e.into()),
    }
}
