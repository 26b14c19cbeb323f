//! `plexus cluster status`: the nodes of a cluster as one of them sees them in the
//! registry they share: each node's instances, how many are healthy, its services,
//! and how long ago its freshest heartbeat was written (a node that stopped shows a
//! growing age until the sweepers deregister its instances).

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use comfy_table::Cell;
use serde::Serialize;
use serde_json::Value;

use crate::remote::{Remote, block_on, table};

/// Arguments of `plexus cluster`.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    action: ClusterAction,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Debug, Subcommand)]
enum ClusterAction {
    /// The nodes, their services, and their heartbeats' age.
    Status,
}

/// One node as the registry shows it.
#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct NodeRow {
    node: String,
    instances: usize,
    healthy: usize,
    services: Vec<String>,
    /// Milliseconds since its freshest heartbeat.
    heartbeat_age_ms: u64,
}

/// The nodes in `services` (the registrations `node.services` returns), grouped by
/// the `plexus.node` metadata; instances without it (outside a cluster, or external
/// services attached over `/ws`) are listed under `(unplaced)`.
pub(crate) fn nodes(services: &Value, now_us: u64) -> Vec<NodeRow> {
    let mut rows: BTreeMap<String, NodeRow> = BTreeMap::new();
    for r in services.as_array().map(Vec::as_slice).unwrap_or_default() {
        let d = &r["descriptor"];
        let node = d["metadata"]["plexus.node"]
            .as_str()
            .unwrap_or("(unplaced)")
            .to_owned();
        let row = rows.entry(node.clone()).or_insert_with(|| NodeRow {
            node,
            instances: 0,
            healthy: 0,
            services: Vec::new(),
            heartbeat_age_ms: u64::MAX,
        });
        row.instances += 1;
        if r["status"] == "healthy" {
            row.healthy += 1;
        }
        if let Some(name) = d["name"].as_str()
            && !row.services.iter().any(|s| s == name)
        {
            row.services.push(name.to_owned());
        }
        if let Some(beat) = r["last_heartbeat"].as_u64() {
            row.heartbeat_age_ms = row
                .heartbeat_age_ms
                .min(now_us.saturating_sub(beat) / 1_000);
        }
    }
    let mut rows: Vec<NodeRow> = rows.into_values().collect();
    for row in &mut rows {
        row.services.sort();
    }
    rows
}

/// `plexus cluster`.
pub(crate) fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    let ClusterAction::Status = args.action;
    let client = args.remote.client()?;
    block_on(async {
        let services = client.services().await?;
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let rows = nodes(&services, now_us);
        if args.remote.json {
            out!("{}", serde_json::to_string(&rows)?);
            return Ok(());
        }
        let mut table = table(&["NODE", "INSTANCES", "HEALTHY", "HEARTBEAT AGE", "SERVICES"]);
        for row in &rows {
            let age = if row.heartbeat_age_ms == u64::MAX {
                "-".to_owned()
            } else {
                format!("{:.1} s", row.heartbeat_age_ms as f64 / 1_000.0)
            };
            table.add_row(vec![
                Cell::new(&row.node),
                Cell::new(row.instances),
                Cell::new(row.healthy),
                Cell::new(age),
                Cell::new(row.services.join(", ")),
            ]);
        }
        out!("{table}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn instances_are_grouped_by_their_node() {
        let services = json!([
            {"descriptor": {"name": "cache", "metadata": {"plexus.node": "a"}}, "status": "healthy", "last_heartbeat": 9_000_000},
            {"descriptor": {"name": "lock", "metadata": {"plexus.node": "a"}}, "status": "unhealthy", "last_heartbeat": 8_000_000},
            {"descriptor": {"name": "cache", "metadata": {"plexus.node": "b"}}, "status": "healthy", "last_heartbeat": 5_000_000},
            {"descriptor": {"name": "worker", "metadata": {}}, "status": "healthy"},
        ]);
        let rows = nodes(&services, 10_000_000);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].node, "(unplaced)");
        assert_eq!(rows[0].heartbeat_age_ms, u64::MAX);
        assert_eq!(
            rows[1],
            NodeRow {
                node: "a".into(),
                instances: 2,
                healthy: 1,
                services: vec!["cache".into(), "lock".into()],
                heartbeat_age_ms: 1_000,
            }
        );
        assert_eq!(
            (rows[2].node.as_str(), rows[2].heartbeat_age_ms),
            ("b", 5_000)
        );
    }
}
