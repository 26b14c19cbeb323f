//! `plexus jobs`: a running node's job queue through its `jobs.*` methods: `list`,
//! `stats`, `dead` (the dead-letter list), `retry` one job, `requeue` dead jobs in
//! bulk, `pause` and `resume` a queue. Tables for people, `--json` for scripts
//! (the method's answer as it is).

use clap::{Args, Subcommand};
use comfy_table::Cell;
use serde_json::{Value, json};

use crate::remote::{Remote, Usage, block_on, table};

/// Arguments of `plexus jobs`.
#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    #[command(subcommand)]
    action: JobsAction,
    #[command(flatten)]
    remote: Remote,
}

/// Which jobs a listing shows.
#[derive(Debug, Args)]
struct Page {
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only ids above this (the last id of the previous page).
    #[arg(long)]
    after: Option<i64>,
    /// At most this many (the node's `jobs.max_list` by default).
    #[arg(long)]
    limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum JobsAction {
    /// Jobs in id order, by queue and state.
    List {
        #[command(flatten)]
        page: Page,
        /// Only this state: pending, running, completed, dead or cancelled.
        #[arg(long)]
        state: Option<String>,
    },
    /// Counts by state, per queue.
    Stats {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
    },
    /// The dead-letter list, with each job's last error.
    Dead {
        #[command(flatten)]
        page: Page,
    },
    /// Run a dead or cancelled job again now.
    Retry {
        /// The job's id.
        id: i64,
    },
    /// Run dead jobs again: those named, or every dead job of `--queue` (or of
    /// every queue).
    Requeue {
        /// The jobs' ids.
        ids: Vec<i64>,
        /// Every dead job of this queue.
        #[arg(long)]
        queue: Option<String>,
    },
    /// Stop starting a queue's jobs, on every node.
    Pause {
        /// The queue.
        queue: String,
    },
    /// Start a paused queue's jobs again.
    Resume {
        /// The queue.
        queue: String,
    },
}

/// The method and params an action calls.
fn request(action: &JobsAction) -> Result<(&'static str, Value), Usage> {
    let page = |p: &Page| json!({"queue": p.queue, "after": p.after, "limit": p.limit});
    let mut params = match action {
        JobsAction::List { page: p, state } => {
            let mut v = page(p);
            v["state"] = json!(state);
            ("jobs.list", v)
        }
        JobsAction::Stats { queue } => ("jobs.stats", json!({"queue": queue})),
        JobsAction::Dead { page: p } => ("jobs.dead", page(p)),
        JobsAction::Retry { id } => ("jobs.retry", json!({"id": id})),
        JobsAction::Requeue { ids, queue } => {
            if !ids.is_empty() && queue.is_some() {
                return Err(Usage("give job ids or --queue, not both".to_owned()));
            }
            let ids = (!ids.is_empty()).then(|| ids.clone());
            ("jobs.requeue", json!({"ids": ids, "queue": queue}))
        }
        JobsAction::Pause { queue } => ("jobs.pause", json!({"queue": queue})),
        JobsAction::Resume { queue } => ("jobs.resume", json!({"queue": queue})),
    };
    // Unset options are left out, not sent as null.
    if let Value::Object(map) = &mut params.1 {
        map.retain(|_, v| !v.is_null());
    }
    Ok(params)
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The jobs of a `list` or `dead` answer as a table.
fn jobs_table(jobs: &[Value]) -> comfy_table::Table {
    let mut t = table(&[
        "ID",
        "QUEUE",
        "STATE",
        "TARGET",
        "PRIORITY",
        "ATTEMPT",
        "RUN AT (ms)",
        "LAST ERROR",
    ]);
    for job in jobs {
        let last = job["errors"].as_array().and_then(|e| e.last()).map_or_else(
            || "-".to_owned(),
            |e| {
                let message = e["message"].as_str().unwrap_or_default();
                format!("{} {message}", text(&e["error"])).trim().to_owned()
            },
        );
        t.add_row(vec![
            Cell::new(text(&job["id"])),
            Cell::new(text(&job["queue"])),
            Cell::new(text(&job["state"])),
            Cell::new(text(&job["target"])),
            Cell::new(text(&job["priority"])),
            Cell::new(format!(
                "{}/{}",
                text(&job["attempt"]),
                text(&job["max_attempts"])
            )),
            Cell::new(text(&job["run_at"])),
            Cell::new(last),
        ]);
    }
    t
}

/// `plexus jobs`.
pub(crate) fn run(args: &JobsArgs) -> anyhow::Result<()> {
    let (method, params) = request(&args.action)?;
    let client = args.remote.client()?;
    block_on(async {
        let answer = client.call(method, params).await?;
        if args.remote.json {
            out!("{answer}");
            return Ok(());
        }
        match &args.action {
            JobsAction::List { .. } | JobsAction::Dead { .. } => {
                let jobs = answer["jobs"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                out!("{}", jobs_table(jobs));
            }
            JobsAction::Retry { .. } => out!("{}", jobs_table(std::slice::from_ref(&answer))),
            JobsAction::Stats { .. } => {
                let mut t = table(&[
                    "QUEUE",
                    "PAUSED",
                    "PENDING",
                    "RUNNING",
                    "COMPLETED",
                    "DEAD",
                    "CANCELLED",
                ]);
                for q in answer["queues"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    t.add_row(
                        [
                            "queue",
                            "paused",
                            "pending",
                            "running",
                            "completed",
                            "dead",
                            "cancelled",
                        ]
                        .iter()
                        .map(|k| Cell::new(text(&q[*k])))
                        .collect::<Vec<_>>(),
                    );
                }
                out!("{t}");
            }
            JobsAction::Requeue { .. } => out!("requeued {}", text(&answer["requeued"])),
            JobsAction::Pause { queue } => out!("paused {queue}"),
            JobsAction::Resume { queue } => out!("resumed {queue}"),
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_options_are_not_sent_and_requeue_takes_ids_or_a_queue() {
        let stats = request(&JobsAction::Stats { queue: None }).expect("stats");
        assert_eq!(stats, ("jobs.stats", json!({})));
        let retry = request(&JobsAction::Retry { id: 7 }).expect("retry");
        assert_eq!(retry, ("jobs.retry", json!({"id": 7})));
        let both = JobsAction::Requeue {
            ids: vec![1],
            queue: Some("q".to_owned()),
        };
        assert!(request(&both).is_err());
    }
}
