//! "No acknowledged write lost": after the run, every write a load had answered ok
//! is read back by its sequence number, and the ones not there are counted.
//!
//! A write load names its id with `${seq}` (see [`crate::load::SEQ`]), so each request
//! writes its own record; the read call names it the same way. A read that finds
//! nothing (`result` null) is a lost write; a read that fails is counted apart, as
//! unreadable: the write was neither shown present nor shown lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::load::SEQ;

/// How many reads are out at once.
pub const CONCURRENCY: usize = 16;

/// What the read-back of one load found.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadBack {
    /// Writes answered ok.
    pub acked: u64,
    /// Read back and present.
    pub found: u64,
    /// Read back and absent: lost (the first sequence numbers, at most 20).
    pub missing: Vec<u64>,
    /// How many were absent.
    pub missing_count: u64,
    /// Reads that failed, by kind: neither present nor shown lost.
    pub unreadable: BTreeMap<String, u64>,
}

/// Reads back each of `acked` with `read` (a JSON-RPC request body naming
/// [`SEQ`]) posted to `url`, [`CONCURRENCY`] at a time, each within `timeout`.
pub async fn read_back(
    client: &reqwest::Client,
    url: &str,
    read: &str,
    acked: &[u64],
    timeout: Duration,
) -> ReadBack {
    let parts: Arc<[String]> = read.split(SEQ).map(str::to_owned).collect();
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut reads = tokio::task::JoinSet::new();
    for &seq in acked {
        let (client, url, parts, permits) = (
            client.clone(),
            url.to_owned(),
            parts.clone(),
            permits.clone(),
        );
        reads.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let body = parts.join(&seq.to_string());
            (seq, read_one(&client, &url, body, timeout).await)
        });
    }
    let mut back = ReadBack {
        acked: acked.len() as u64,
        ..ReadBack::default()
    };
    while let Some(joined) = reads.join_next().await {
        let (seq, found) = match joined {
            Ok(r) => r,
            Err(_) => (0, Err("the read task failed".to_owned())),
        };
        match found {
            Ok(true) => back.found += 1,
            Ok(false) => {
                back.missing_count += 1;
                back.missing.push(seq);
            }
            Err(kind) => *back.unreadable.entry(kind).or_default() += 1,
        }
    }
    back.missing.sort_unstable();
    back.missing.truncate(20);
    back
}

/// Whether the read found something (`result` not null), or why it failed.
async fn read_one(
    client: &reqwest::Client,
    url: &str,
    body: String,
    timeout: Duration,
) -> Result<bool, String> {
    let request = async {
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|_| "connection".to_owned())?;
        let status = response.status();
        let value: serde_json::Value = response
            .json()
            .await
            .map_err(|_| "invalid answer".to_owned())?;
        if !status.is_success() {
            return Err(format!("http {}", status.as_u16()));
        }
        if let Some(error) = value.get("error") {
            return Err(
                match error.get("code").and_then(serde_json::Value::as_i64) {
                    Some(code) => format!("rpc {code}"),
                    None => "rpc error".to_owned(),
                },
            );
        }
        match value.get("result") {
            Some(result) => Ok(!result.is_null()),
            None => Err("invalid answer".to_owned()),
        }
    };
    tokio::time::timeout(timeout, request)
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}
