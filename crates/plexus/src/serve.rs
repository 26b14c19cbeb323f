//! `plexus serve` and `plexus mcp`: one node from a TOML configuration, assembled by
//! `plexus-app` (the library an embedder uses too).
//!
//! The configuration file (every section optional; no file at all is the default):
//!
//! ```toml
//! [node]
//! name = "plexus"          # the node's name (supervisor, node service instance `node-<name>`)
//! data_dir = "plexus-data" # where embedded backends keep their files
//! drain_ms = 5000          # how long the bus may drain at shutdown
//! datastore = true         # run the `datastore` service over [store]
//!
//! [store]                  # plexus_store::StoreConfig; default: SQLite at <data_dir>/plexus.db
//! url = "sqlite://plexus-data/plexus.db"   # or postgres://user@host:5432/db
//!
//! [gateway]                # plexus_gateway::GatewayConfig: bind, bounds, tokens
//! bind = "127.0.0.1:7700"
//!
//! [mcp]                    # plexus_mcp::McpConfig: sessions, origins, bounds
//!
//! [calls.default]          # the node's call policies (plexus_node::policy), hot-reloaded
//! timeout_ms = 5000
//!
//! [[processes]]            # supervised child processes, started in order
//! name = "worker"
//! command = "python3"
//! args = ["worker.py"]
//! env = { LOG = "info" }
//! cwd = "."
//! restart = "permanent"    # permanent | transient | temporary
//! ```
//!
//! `PLEXUS_*` environment variables override the file (`PLEXUS_GATEWAY__BIND=…`;
//! `PLEXUS_URL`, `PLEXUS_TOKEN`, `PLEXUS_TEST_*` and `PLEXUS_FUZZ_*` (the test script's) are never configuration). An
//! unknown key is refused at start with its full path. The file is watched: a change
//! to `calls` applies to the next call; the other sections are validated on every
//! change but read at start only.
//!
//! On SIGINT or SIGTERM the gateway stops accepting, drains in-flight requests and
//! WebSockets, then the node stops its services and processes in reverse start
//! order; the last log line, `stopped`, names them in that order.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use plexus_app::{App, AppBuilder, AppError};
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `plexus serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The TOML configuration file (default: node `plexus`, gateway on
    /// 127.0.0.1:7700, everything embedded). It is watched for changes.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on this address instead of the configuration's `gateway.bind`.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Keep embedded backends' files (the SQLite DataStore) in this folder instead
    /// of the configuration's `node.data_dir`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Arguments of `plexus mcp`.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// Relay to the node at this address (default: `PLEXUS_URL`, else
    /// http://127.0.0.1:7700 when a node answers there).
    #[arg(long, env = "PLEXUS_URL", value_name = "URL")]
    url: Option<String>,
    /// The bearer token for that node.
    #[arg(long, env = "PLEXUS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Run a node of its own instead, from this TOML configuration file (as for
    /// `plexus serve`; its `gateway` is not served).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run a node of its own even when one answers.
    #[arg(long)]
    standalone: bool,
}

/// The node the configuration file (or the default) and the environment describe.
fn builder(config: Option<&PathBuf>) -> AppBuilder {
    let builder = App::builder().process_env();
    match config {
        Some(file) => builder.file(file),
        None => builder,
    }
}

/// `plexus serve`.
pub(crate) fn run(args: &ServeArgs) -> Result<(), AppError> {
    runtime()?.block_on(async {
        let stopping = stop_signal()?;
        let mut builder = builder(args.config.as_ref());
        if let Some(bind) = args.bind {
            builder = builder.bind(bind);
        }
        if let Some(dir) = &args.data_dir {
            builder = builder.data_dir(dir);
        }
        let app = builder.start().await?;
        let listening = match app.listen().await {
            Ok(listening) => listening,
            Err(e) => {
                app.stop().await;
                return Err(e);
            }
        };
        let announced = {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "plexus: node `{}` listening on http://{} (JSON-RPC /rpc, WebSocket /ws, MCP /mcp, metrics /metrics, health /health)",
                app.config().node.name,
                listening.local_addr()?
            )
            .and_then(|()| out.flush())
        };
        if let Err(error) = announced {
            // Serving matters more than the announcement; the log says where too.
            tracing::warn!(%error, "could not write the listening line to stdout");
        }
        app.serve(listening, stopping).await.map(drop)
    })
}

/// `plexus mcp`: MCP over stdin and stdout, until the client closes stdin or a
/// signal comes. Relayed to a running node (`--url`, `PLEXUS_URL`, or the default
/// address when a node answers there); with `--config`, `--standalone` or no node
/// answering, a node of its own. Logs go to stderr.
pub(crate) fn run_mcp(args: &McpArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let stopping = stop_signal()?;
        let own = args.standalone || args.config.is_some();
        if !own {
            let url = args
                .url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:7700".to_owned());
            let url = url.trim_end_matches('/').to_owned();
            if args.url.is_some() || crate::bridge::node_answers(&url).await {
                tracing::info!(%url, "relaying MCP on stdio to the running node");
                return tokio::select! {
                    relayed = crate::bridge::relay(&url, args.token.as_deref()) => relayed,
                    () = stopping => Ok(()),
                };
            }
        }
        let app = builder(args.config.as_ref()).start().await?;
        app.serve_mcp_stdio(stopping).await?;
        Ok(())
    })
}

/// The multi-threaded runtime, with logging to stderr set up first.
fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    init_tracing();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Completes on the first SIGINT or SIGTERM. Installed before the node serves, so
/// a signal that comes early is not lost.
fn stop_signal() -> Result<impl Future<Output = ()> + Send + 'static, AppError> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
    })
}

/// Logs to stderr (stdout is for the listening line, and MCP's own on `plexus
/// mcp`), filtered by `RUST_LOG` (default `info`), coloured on a terminal unless
/// `NO_COLOR` is set.
fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_ansi(ansi)
        .try_init();
}
