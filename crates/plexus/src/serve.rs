//! `plexus serve` and `plexus mcp`: one node from a TOML configuration.
//!
//! The configuration file (every section optional; no file at all is the default
//! below):
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
//! The whole document becomes the node's runtime configuration
//! (`plexus_config::ConfigStore`), with `PLEXUS_*` environment overrides on top
//! (`PLEXUS_GATEWAY__BIND=127.0.0.1:7800`; `PLEXUS_URL`, `PLEXUS_TOKEN` and
//! `PLEXUS_TEST_*` are the CLI's and the tests' own, never configuration). An
//! unknown key is refused at start with its full path. The file is watched: a change
//! to `calls` applies to the next call; `node`, `gateway`, `mcp` and `processes` are
//! validated on every change but read at start only.
//!
//! On SIGINT or SIGTERM the gateway stops accepting, drains in-flight requests and
//! WebSockets, then the node stops taking calls and stops its services and
//! processes in reverse start order; the last log line, `stopped`, names them in
//! that order.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use plexus_bus::Bus;
use plexus_config::{ConfigError, ConfigOptions, ConfigStore, FieldErrors, Validate};
use plexus_gateway::{Gateway, GatewayConfig, GatewayError};
use plexus_mcp::{McpConfig, McpError};
use plexus_node::{CallObserver, CallRecord};
use plexus_node::{Node, NodeError};
use plexus_registry::health::{CheckError, ComponentKind, ComponentSpec, HealAction, check_fn};
use plexus_store::{
    AuditConfig, AuditEntry, AuditError, AuditLog, AuditOutcome, AuditService, DataStore,
    DataStoreService, StoreConfig, StoreError, StoreHistory,
};
use plexus_supervisor::{ProcessSpec, Restart, SupervisorEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::signal::unix::{SignalKind, signal};

/// Environment variables with the configuration prefix that are not configuration:
/// the CLI's address and token, and the test suites' server URLs.
pub(crate) const ENV_EXCLUDE: [&str; 3] = ["PLEXUS_TEST_", "PLEXUS_URL", "PLEXUS_TOKEN"];

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
}

/// Arguments of `plexus mcp`.
#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// The TOML configuration file, as for `plexus serve` (its `gateway` is not
    /// served).
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The whole configuration of `plexus serve`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServeConfig {
    /// The node itself.
    pub(crate) node: NodeConfig,
    /// The HTTP and WebSocket front.
    pub(crate) gateway: GatewayConfig,
    /// The MCP server, at `/mcp` and on `plexus mcp`'s stdio.
    pub(crate) mcp: McpConfig,
    /// The DataStore's database (default: SQLite in `node.data_dir`).
    pub(crate) store: Option<StoreConfig>,
    /// The call policies; the node validates and reads them
    /// (`plexus_node::policy::CallsConfig`).
    pub(crate) calls: Option<Value>,
    /// Supervised child processes, in start order.
    pub(crate) processes: Vec<ProcessConfig>,
}

/// `[node]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct NodeConfig {
    /// The node's name (default `plexus`).
    pub(crate) name: String,
    /// Where embedded backends keep their files (default `plexus-data`, relative to
    /// the working directory): the SQLite file of the DataStore unless `[store]`
    /// names another database.
    pub(crate) data_dir: PathBuf,
    /// How long the bus may take to deliver what it holds at shutdown, in
    /// milliseconds (default 5,000).
    pub(crate) drain_ms: u64,
    /// Run the `datastore` service (default true).
    pub(crate) datastore: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "plexus".to_owned(),
            data_dir: PathBuf::from("plexus-data"),
            drain_ms: 5_000,
            datastore: true,
        }
    }
}

/// One `[[processes]]` entry: a child process the node's supervisor runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessConfig {
    /// Its name in the supervisor, logs and events.
    pub(crate) name: String,
    /// The program: a path, or a name looked up in `PATH`.
    pub(crate) command: String,
    /// Its arguments.
    #[serde(default)]
    pub(crate) args: Vec<String>,
    /// Variables added to the node's environment for it.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// Its working directory (default: the node's).
    #[serde(default)]
    pub(crate) cwd: Option<PathBuf>,
    /// When it is started again after it exits (default `permanent`).
    #[serde(default)]
    pub(crate) restart: Restart,
}

/// Why `plexus serve` or `plexus mcp` could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    /// The configuration could not be read or was refused.
    #[error("configuration")]
    Config(#[from] ConfigError),
    /// A key of the configuration is unknown or has the wrong type.
    #[error("configuration: `{key}`: {reason}")]
    Invalid {
        /// The key's dotted path.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gateway's configuration was refused or it could not serve.
    #[error("gateway")]
    Gateway(#[from] GatewayError),
    /// The MCP server's configuration was refused or its transport failed.
    #[error("mcp")]
    Mcp(#[from] McpError),
    /// The node could not start.
    #[error("starting the node")]
    Node(#[from] NodeError),
    /// The DataStore's database could not be opened.
    #[error("opening the store")]
    Store(#[from] StoreError),
    /// The audit trail could not be set up.
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    /// Signal handlers could not be installed, or stdout could not be written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// Whether the error is in the configuration (exit status 2) rather than in
    /// running it (1).
    pub(crate) fn is_config(&self) -> bool {
        matches!(
            self,
            ServeError::Config(_)
                | ServeError::Invalid { .. }
                | ServeError::Gateway(GatewayError::Config(_))
                | ServeError::Mcp(McpError::InvalidConfig { .. })
                | ServeError::Node(NodeError::Config(_) | NodeError::Policy(_))
                | ServeError::Store(StoreError::Config { .. })
        )
    }
}

impl ServeConfig {
    /// Reads the configuration from a document, naming the first key that is
    /// unknown or of the wrong type, and checks every section.
    pub(crate) fn from_document(document: &Value) -> Result<Self, ServeError> {
        let config: ServeConfig = serde_path_to_error::deserialize(document).map_err(|e| {
            let key = e.path().to_string();
            ServeError::Invalid {
                key: if key == "." { "(root)".to_owned() } else { key },
                reason: e.into_inner().to_string(),
            }
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ServeError> {
        let invalid = |errors: FieldErrors| {
            let first = errors.first();
            ServeError::Invalid {
                key: first.map(|f| f.field.clone()).unwrap_or_default(),
                reason: first.map(|f| f.reason.clone()).unwrap_or_default(),
            }
        };
        self.node.validate().map_err(|e| invalid(e.under("node")))?;
        Processes(self.processes.clone())
            .validate()
            .map_err(|e| invalid(e.under("processes")))?;
        self.gateway.validate().map_err(GatewayError::from)?;
        self.mcp.validate()?;
        self.store().validate().map_err(|e| match e {
            StoreError::Config { field, reason } => ServeError::Invalid {
                key: format!("store.{field}"),
                reason,
            },
            other => ServeError::Store(other),
        })?;
        Ok(())
    }

    /// The DataStore's configuration in force: `[store]`, or SQLite in the data
    /// directory.
    pub(crate) fn store(&self) -> StoreConfig {
        self.store
            .clone()
            .unwrap_or_else(|| StoreConfig::sqlite_in(&self.node.data_dir))
    }
}

impl Validate for NodeConfig {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        errors
            .non_empty("name", &self.name)
            .check(!self.data_dir.as_os_str().is_empty(), "data_dir", || {
                "must not be empty".to_owned()
            })
            .at_least("drain_ms", self.drain_ms, 1);
        errors.into_result()
    }
}

/// `[[processes]]` as a configuration section, so a runtime change is checked too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct Processes(Vec<ProcessConfig>);

impl Validate for Processes {
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for (i, p) in self.0.iter().enumerate() {
            errors
                .non_empty(&format!("{i}.name"), &p.name)
                .non_empty(&format!("{i}.command"), &p.command)
                .check(
                    !self.0[..i].iter().any(|q| q.name == p.name),
                    &format!("{i}.name"),
                    || format!("`{}` names another process too", p.name),
                );
        }
        errors.into_result()
    }
}

/// `[gateway]` as a configuration section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct GatewaySection(GatewayConfig);

impl Validate for GatewaySection {
    fn validate(&self) -> Result<(), FieldErrors> {
        self.0
            .validate()
            .map_err(|e| FieldErrors::one("", e.to_string()))
    }
}

/// `[mcp]` as a configuration section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct McpSection(McpConfig);

impl Validate for McpSection {
    fn validate(&self) -> Result<(), FieldErrors> {
        self.0
            .validate()
            .map_err(|e| FieldErrors::one("", e.to_string()))
    }
}

/// `[store]` as a configuration section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct StoreSection(StoreConfig);

impl Validate for StoreSection {
    fn validate(&self) -> Result<(), FieldErrors> {
        self.0.validate().map_err(|e| match e {
            StoreError::Config { field, reason } => FieldErrors::one(field, reason),
            other => FieldErrors::one("", other.to_string()),
        })
    }
}

/// Hands each mutating call to the store's audit log.
struct AuditObserver {
    log: AuditLog,
}

#[plexus_core::async_trait]
impl CallObserver for AuditObserver {
    async fn record(&self, record: CallRecord) {
        let outcome = match &record.error {
            None => AuditOutcome::Ok,
            Some((_, message)) => AuditOutcome::Error {
                code: record.outcome.clone(),
                message: message.clone(),
            },
        };
        let entry = AuditEntry {
            at: record.at,
            who: record.caller,
            method: record.method,
            params: record.params,
            correlation_id: record.correlation_id,
            outcome,
            duration: record.duration,
        };
        if let Err(error) = self.log.record(&entry).await {
            tracing::error!(%error, method = %entry.method, "audit record not written");
        }
    }
}

/// Opens the DataStore the configuration names, when the node runs one.
async fn open_datastore(config: &ServeConfig) -> Result<Option<DataStore>, ServeError> {
    if !config.node.datastore {
        return Ok(None);
    }
    let settings = config.store();
    let datastore = DataStore::connect(&settings).await?;
    tracing::info!(
        backend = settings.backend().map(|b| b.as_str()).unwrap_or("?"),
        "datastore open"
    );
    Ok(Some(datastore))
}

/// Reads the configuration, opens the DataStore it names, and reads the
/// configuration again with its history kept in that database, so versions and
/// rollbacks survive a restart.
async fn load_with_store(
    file: Option<&Path>,
    bus: &Bus,
) -> Result<(ConfigStore, ServeConfig, Option<DataStore>), ServeError> {
    let (_, first) = load(file, bus, None).await?;
    let datastore = open_datastore(&first).await?;
    let history = datastore.as_ref().map(|d| {
        Arc::new(StoreHistory::new(d.store().clone())) as Arc<dyn plexus_config::HistoryStore>
    });
    let (store, config) = load(file, bus, history).await?;
    Ok((store, config, datastore))
}

/// Reads the configuration (the file, or the default), with the environment on top.
async fn load(
    file: Option<&Path>,
    bus: &Bus,
    history: Option<Arc<dyn plexus_config::HistoryStore>>,
) -> Result<(ConfigStore, ServeConfig), ServeError> {
    let options = ConfigOptions {
        bus: Some(bus.clone()),
        env_exclude: ENV_EXCLUDE.iter().map(|s| (*s).to_owned()).collect(),
        ..ConfigOptions::default()
    };
    let mut builder = ConfigStore::builder().options(options).process_env();
    if let Some(file) = file {
        builder = builder.file(file);
    }
    if let Some(history) = history {
        builder = builder.history(history);
    }
    let store = builder.build().await?;
    let config = ServeConfig::from_document(&store.document())?;
    // Every later change (a reload, `plexus config set`) is checked against these.
    store.register_section::<NodeConfig>("node").await?;
    store.register_section::<GatewaySection>("gateway").await?;
    store.register_section::<McpSection>("mcp").await?;
    store.register_section::<Processes>("processes").await?;
    store.register_section::<StoreSection>("store").await?;
    Ok((store, config))
}

/// Starts the node the configuration describes, and watches the file.
async fn start(
    file: Option<&Path>,
    bus: Bus,
    store: ConfigStore,
    config: &ServeConfig,
    datastore: Option<DataStore>,
) -> Result<(Node, Option<plexus_config::FileWatch>), ServeError> {
    let mut builder = Node::builder(config.node.name.clone())
        .bus(bus)
        .config(store.clone());
    if let Some(datastore) = &datastore {
        builder = builder.service(Arc::new(DataStoreService::new(datastore.clone())));
        // Every mutating call is recorded in the audit trail, readable as `audit.query`.
        let log = AuditLog::new(datastore.store().clone(), AuditConfig::default())?;
        builder = builder
            .audit(Arc::new(AuditObserver { log: log.clone() }))
            .service(Arc::new(AuditService::new(log)));
        // The database as a health component: a failed ping is a check failure, and
        // the heal action reconnects.
        let (check_store, heal_store) = (datastore.store().clone(), datastore.store().clone());
        builder = builder.component(
            ComponentSpec::new(
                "database",
                ComponentKind::Dependency,
                check_fn(move || {
                    let store = check_store.clone();
                    async move {
                        store
                            .ping()
                            .await
                            .map(|_| plexus_core::HealthReport::healthy())
                            .map_err(|e| CheckError::new(e.to_string()))
                    }
                }),
            )
            .with_heal(HealAction::reconnect("reconnect", move || {
                let store = heal_store.clone();
                async move { store.reconnect().await }
            })),
        );
    }
    for p in &config.processes {
        let spec = ProcessSpec {
            command: p.command.clone(),
            args: p.args.clone(),
            env: p.env.clone(),
            cwd: p.cwd.clone(),
        };
        builder = builder.process(p.name.clone(), spec, p.restart);
    }
    let node = builder.start().await?;
    if let Some(datastore) = &datastore {
        node.metrics()
            .with_registry(|registry| datastore.store().metrics().register(registry));
    }
    let processes = node
        .supervisor()
        .children()
        .into_iter()
        .filter(|c| c.kind == plexus_supervisor::ChildKind::Process);
    for child in processes {
        tracing::info!(
            process = %child.name,
            pid = child.pid.unwrap_or_default(),
            state = ?child.state,
            "process started"
        );
    }
    spawn_supervision_log(&node);
    let watch = match file {
        Some(file) => match store.watch_file(file) {
            Ok(watch) => Some(watch),
            Err(e) => {
                node.shutdown(drain(config)).await;
                return Err(e.into());
            }
        },
        None => None,
    };
    Ok((node, watch))
}

fn drain(config: &ServeConfig) -> Duration {
    Duration::from_millis(config.node.drain_ms)
}

/// Logs what the supervisor does after start: exits, restarts, giving up.
fn spawn_supervision_log(node: &Node) {
    let mut events = node.supervisor().events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(SupervisorEvent::ChildExited {
                    child,
                    reason,
                    abnormal,
                    pid,
                    ..
                }) => {
                    if abnormal {
                        tracing::warn!(child, pid, %reason, "child exited");
                    } else {
                        tracing::info!(child, pid, %reason, "child exited");
                    }
                }
                Ok(event @ SupervisorEvent::GaveUp { .. }) => {
                    tracing::error!(?event, "supervisor gave up");
                }
                Ok(event) => tracing::info!(?event, "supervisor"),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "supervisor events missed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Completes on the first SIGINT or SIGTERM. Installed before the node serves, so
/// a signal that comes early is not lost.
fn stop_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
            _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
        }
    })
}

/// Stops the node and logs the order its children stopped in.
async fn stop(node: &Node, config: &ServeConfig) {
    let report = node.shutdown(drain(config)).await;
    let order = report.services.order();
    tracing::info!(
        node = %config.node.name,
        services = %order.join(", "),
        killed = %report.services.killed().join(", "),
        bus_drained = report.bus.drained,
        undelivered = report.bus.undelivered.len(),
        "stopped"
    );
}

/// `plexus serve`.
pub(crate) fn run(args: &ServeArgs) -> Result<(), ServeError> {
    init_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: &ServeArgs) -> Result<(), ServeError> {
    let stopping = stop_signal()?;
    let bus = Bus::new();
    let (store, mut config, datastore) = load_with_store(args.config.as_deref(), &bus).await?;
    if let Some(bind) = args.bind {
        config.gateway.bind = bind;
        config.gateway.validate().map_err(GatewayError::from)?;
    }
    let (node, _watch) = start(args.config.as_deref(), bus, store, &config, datastore).await?;
    let built = async {
        let mcp = plexus_mcp::router(node.clone(), config.mcp.clone())?;
        let gateway = Gateway::builder(node.clone())
            .config(config.gateway.clone())
            .route("/mcp", mcp)
            .build()?;
        let listener = gateway.bind().await?;
        Ok::<_, ServeError>((gateway, listener))
    };
    let (gateway, listener) = match built.await {
        Ok(ready) => ready,
        Err(e) => {
            stop(&node, &config).await;
            return Err(e);
        }
    };
    let addr = listener.local_addr()?;
    let announced = {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "plexus: node `{}` listening on http://{addr} (JSON-RPC /rpc, WebSocket /ws, MCP /mcp, metrics /metrics, health /health)",
            config.node.name
        )
        .and_then(|()| out.flush())
    };
    if let Err(error) = announced {
        // Serving matters more than the announcement; the log says where too.
        tracing::warn!(%error, "could not write the listening line to stdout");
    }
    let served = gateway.serve(listener, stopping).await;
    match &served {
        Ok(report) => tracing::info!(drained = report.drained, "gateway stopped"),
        Err(error) => tracing::error!(%error, "gateway failed"),
    }
    stop(&node, &config).await;
    served.map(|_| ()).map_err(ServeError::from)
}

/// `plexus mcp`: the node's methods as MCP tools over stdin and stdout, until the
/// client closes stdin or a signal comes. Logs go to stderr.
pub(crate) fn run_mcp(args: &McpArgs) -> Result<(), ServeError> {
    init_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(mcp(args))
}

async fn mcp(args: &McpArgs) -> Result<(), ServeError> {
    let stopping = stop_signal()?;
    let bus = Bus::new();
    let (store, config, datastore) = load_with_store(args.config.as_deref(), &bus).await?;
    let (node, _watch) = start(args.config.as_deref(), bus, store, &config, datastore).await?;
    tracing::info!(node = %config.node.name, "serving MCP on stdio");
    let served = tokio::select! {
        served = plexus_mcp::serve_stdio(node.clone(), config.mcp.clone()) => served,
        () = stopping => Ok(()),
    };
    stop(&node, &config).await;
    served.map_err(ServeError::from)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn no_file_is_the_default_node_on_loopback() {
        let config = ServeConfig::from_document(&json!({})).unwrap();
        assert_eq!(config.node.name, "plexus");
        assert_eq!(config.gateway.bind.to_string(), "127.0.0.1:7700");
        assert!(config.processes.is_empty());
        assert_eq!(config.store().url, "sqlite://plexus-data/plexus.db");
    }

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        for (doc, key, needle) in [
            (json!({"gatway": {}}), "gatway", "unknown field"),
            (
                json!({"gateway": {"max_bach": 5}}),
                "gateway.max_bach",
                "unknown field",
            ),
            (json!({"node": {"nme": "x"}}), "node.nme", "unknown field"),
            (
                json!({"node": {"name": 5}}),
                "node.name",
                "expected a string",
            ),
            (
                json!({"processes": [{"name": "a", "command": "b", "restrat": "x"}]}),
                "processes[0].restrat",
                "unknown field",
            ),
        ] {
            match ServeConfig::from_document(&doc).unwrap_err() {
                ServeError::Invalid { key: k, reason } => {
                    assert_eq!(k, key, "{doc}");
                    assert!(reason.contains(needle), "{reason}");
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn sections_are_checked_naming_the_field() {
        let err = ServeConfig::from_document(&json!({"node": {"drain_ms": 0}})).unwrap_err();
        assert!(err.to_string().contains("node.drain_ms"), "{err}");
        assert!(err.is_config());
        let twice = json!({"processes": [
            {"name": "a", "command": "true"}, {"name": "a", "command": "true"}
        ]});
        let err = ServeConfig::from_document(&twice).unwrap_err();
        assert!(err.to_string().contains("processes.1.name"), "{err}");
        let store = json!({"store": {"url": "mysql://x"}});
        let err = ServeConfig::from_document(&store).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        let public = json!({"gateway": {"bind": "0.0.0.0:7700"}});
        let err = ServeConfig::from_document(&public).unwrap_err();
        assert!(err.is_config(), "{err}");
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.starts_with("gateway: "), "{chain}");
        assert!(chain.contains("without auth"), "{chain}");
    }
}
