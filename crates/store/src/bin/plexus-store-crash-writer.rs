//! A test helper for the store's crash test (`tests/durable/crash.rs`): writes
//! documents, each with a durable event in the same transaction, as fast as it can,
//! and prints `<n> <event id> <offset>` on stdout after each commit — until it is
//! killed or has written `count`.
//!
//! Usage: `plexus-store-crash-writer <store url> <postgres schema or -> <count>`
//!
//! Exit codes: 0 when it wrote everything, 2 on bad arguments, 1 on a store error.

use std::io::Write;

use plexus_core::{Envelope, Payload, Topic};
use plexus_store::{CollectionSpec, DataStore, Outbox, OutboxConfig, PutMode, StoreConfig};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, schema, count] = args.as_slice() else {
        eprintln!("usage: plexus-store-crash-writer <store url> <postgres schema or -> <count>");
        std::process::exit(2);
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("count must be a whole number, not {count:?}");
        std::process::exit(2);
    };
    let config = StoreConfig {
        schema: (schema != "-").then(|| schema.clone()),
        ..StoreConfig::with_url(url.clone())
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(write(config, count)) {
        eprintln!("crash writer: {e}");
        std::process::exit(1);
    }
}

async fn write(config: StoreConfig, count: u64) -> Result<(), Box<dyn std::error::Error>> {
    let ds = DataStore::connect(&config).await?;
    ds.create_collection("crash", CollectionSpec::default())
        .await?;
    let outbox = Outbox::open(ds, OutboxConfig::default()).await?;
    outbox.declare_durable("crash.>")?;
    let topic = Topic::new("crash.written")?;
    let mut out = std::io::stdout().lock();
    for n in 0..count {
        let event = Envelope::new(topic.clone(), Payload::json(&json!({"n": n}))?);
        let (_, appended) = outbox
            .put(
                "crash",
                &format!("d{n}"),
                &json!({"n": n}),
                PutMode::Insert,
                None,
                vec![event],
            )
            .await?;
        for a in appended {
            // Printed only after the commit: every line names a committed event.
            writeln!(out, "{n} {} {}", a.id, a.offset)?;
        }
        out.flush()?;
    }
    Ok(())
}
