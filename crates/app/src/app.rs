//! [`App`]: a node assembled from its configuration, its families and any services
//! of the embedder's own, served over the gateway (HTTP, WebSocket, MCP) or MCP's
//! stdio, and stopped in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use plexus_bus::Bus;
use plexus_config::{ConfigOptions, ConfigStore, FileWatch, HistoryStore};
use plexus_core::Service;
use plexus_gateway::{Gateway, ServeReport};
use plexus_node::{Node, NodeShutdown, ServiceOptions};
use plexus_registry::health::CheckPolicy;
use plexus_supervisor::{ChildKind, ProcessSpec, SupervisorEvent};
use serde_json::Value;
use tokio::net::TcpListener;

use plexus_node::family::{Family, NodeSection, Parts, checked};

use crate::config::{ENV_EXCLUDE, Processes};
use crate::{AppConfig, AppError, default_families};

/// Where the configuration comes from, and what the embedder adds.
#[must_use]
pub struct AppBuilder {
    file: Option<PathBuf>,
    toml: Option<String>,
    env: bool,
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    families: Vec<Box<dyn Family>>,
    services: Vec<Arc<dyn Service>>,
}

impl Default for AppBuilder {
    fn default() -> Self {
        Self {
            file: None,
            toml: None,
            env: false,
            bind: None,
            data_dir: None,
            families: default_families(),
            services: Vec::new(),
        }
    }
}

impl AppBuilder {
    /// Reads the configuration from this TOML file, and watches it for changes.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Reads the configuration from this TOML text (ignored when a file is given).
    pub fn toml(mut self, text: impl Into<String>) -> Self {
        self.toml = Some(text.into());
        self
    }

    /// Applies `PLEXUS_*` environment overrides on top (`PLEXUS_GATEWAY__BIND=…`);
    /// `PLEXUS_URL`, `PLEXUS_TOKEN`, `PLEXUS_TEST_*` and `PLEXUS_FUZZ_*` (the test script's) are never configuration.
    pub fn process_env(mut self) -> Self {
        self.env = true;
        self
    }

    /// Listens on this address instead of the configuration's `gateway.bind`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Keeps embedded backends' files in `dir` instead of the configuration's
    /// `node.data_dir`.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Adds a service family (after the built-in ones).
    pub fn family(mut self, family: impl Family) -> Self {
        self.families.push(Box::new(family));
        self
    }

    /// Adds a service of the embedder's own, started after the families' services.
    pub fn service(mut self, service: Arc<dyn Service>) -> Self {
        self.services.push(service);
        self
    }

    /// Reads and checks the configuration, opens every family's backends, and starts
    /// the node (its services, health checks and processes). The gateway is not yet
    /// listening: see [`App::serve`].
    pub async fn start(self) -> Result<App, AppError> {
        let bus = Bus::new();
        let sections: Vec<&str> = self.families.iter().map(|f| f.section()).collect();
        let (_, first) = self.load(&bus, None, &sections).await?;
        // Every family opens its backends; the first history store offered keeps
        // configuration versions across restarts.
        let mut parts = Parts::default();
        for family in &self.families {
            let section = first.1.get(family.section());
            parts.merge(family.open(section, &first.0.node).await?);
        }
        let (store, (mut config, _)) = match &parts.history {
            Some(history) => self.load(&bus, Some(history.clone()), &sections).await?,
            None => self.load(&bus, None, &sections).await?,
        };
        if let Some(bind) = self.bind {
            config.gateway.bind = bind;
            config
                .gateway
                .validate()
                .map_err(plexus_gateway::GatewayError::from)?;
        }
        for family in &self.families {
            family.register(&store).await?;
            if let Some(defaults) = family.defaults(&config.node) {
                store.declare_defaults(family.section(), defaults)?;
            }
        }
        store.declare_defaults("health", crate::config::HealthSection::defaults())?;
        // Every setting in force is readable (`node.config_get`, `plexus config get`),
        // defaults included.
        let own = serde_json::to_value(AppConfig::default()).map_err(|e| AppError::Invalid {
            key: "(defaults)".into(),
            reason: e.to_string(),
        })?;
        if let Value::Object(sections) = own {
            for (section, defaults) in sections {
                if section != "calls" && section != "health" && !defaults.is_null() {
                    store.declare_defaults(&section, defaults)?;
                }
            }
        }
        let node = assemble(&config, bus, store.clone(), &mut parts, self.services).await?;
        let watch = match &self.file {
            Some(file) => match store.watch_file(file) {
                Ok(watch) => Some(watch),
                Err(e) => {
                    node.shutdown(config.drain()).await;
                    return Err(e.into());
                }
            },
            None => None,
        };
        Ok(App {
            node,
            config,
            routes: std::mem::take(&mut parts.routes),
            _watch: watch,
        })
    }

    /// Reads the configuration (file or text, the environment on top), with its
    /// history in `history` when given, and checks the node's and families' sections.
    async fn load(
        &self,
        bus: &Bus,
        history: Option<Arc<dyn HistoryStore>>,
        sections: &[&str],
    ) -> Result<(ConfigStore, (AppConfig, Value)), AppError> {
        let options = ConfigOptions {
            bus: Some(bus.clone()),
            env_exclude: ENV_EXCLUDE.iter().map(|s| (*s).to_owned()).collect(),
            ..ConfigOptions::default()
        };
        let mut builder = ConfigStore::builder().options(options);
        if self.env {
            builder = builder.process_env();
        }
        match (&self.file, &self.toml) {
            (Some(file), _) => builder = builder.file(file),
            (None, Some(text)) => builder = builder.toml(text.clone()),
            (None, None) => {}
        }
        if let Some(history) = history {
            builder = builder.history(history);
        }
        let store = builder.build().await?;
        let document = store.document();
        let mut config = AppConfig::from_document(&document, sections)?;
        if let Some(dir) = &self.data_dir {
            config.node.data_dir = dir.clone();
        }
        for family in &self.families {
            family.check(document.get(family.section()), &config.node)?;
        }
        // Every later change (a reload, `plexus config set`) is checked against these.
        store.register_section::<NodeSection>("node").await?;
        store
            .register_section::<plexus_gateway::GatewayConfig>("gateway")
            .await?;
        store
            .register_section::<plexus_mcp::McpConfig>("mcp")
            .await?;
        store.register_section::<Processes>("processes").await?;
        store
            .register_section::<crate::config::HealthSection>("health")
            .await?;
        store
            .register_section::<crate::config::RegistrySection>("registry")
            .await?;
        Ok((store, (config, Value::clone(&document))))
    }
}

/// Builds and starts the node from the configuration and the families' parts.
async fn assemble(
    config: &AppConfig,
    bus: Bus,
    store: ConfigStore,
    parts: &mut Parts,
    services: Vec<Arc<dyn Service>>,
) -> Result<Node, AppError> {
    checked(&config.processes, "processes")?;
    let mut builder = Node::builder(config.node.name.clone())
        .bus(bus)
        .config(store)
        .registry_config(config.registry.registry_config());
    for service in parts.services.iter().chain(&services) {
        let name = service.descriptor().instance.to_string();
        let health = config.health.policy(&name, CheckPolicy::default());
        let options = ServiceOptions::default().with_health(health);
        builder = builder.service_with(service.clone(), options);
    }
    if let Some(observer) = parts.observer_for_node() {
        builder = builder.audit(observer);
    }
    if let Some(link) = parts.cluster.take() {
        builder = builder.cluster(link);
    }
    if let Some(log) = parts.durable.take() {
        builder = builder.durable(log);
    }
    for component in parts.components.drain(..) {
        let policy = config
            .health
            .policy(component.name(), component.policy().clone());
        builder = builder.component(component.with_policy(policy));
    }
    for p in &config.processes.0 {
        let spec = ProcessSpec {
            command: p.command.clone(),
            args: p.args.clone(),
            env: p.env.clone(),
            cwd: p.cwd.clone(),
        };
        builder = builder.process(p.name.clone(), spec, p.restart);
    }
    let node = builder.start().await?;
    for hook in parts.metrics.drain(..) {
        hook(&node);
    }
    // Every family has had its say on where durable events go (the cluster may
    // have offered its stream): the log's relay starts now.
    if let Some(log) = node.durable() {
        log.start(node.bus().clone());
    }
    for child in node.supervisor().children() {
        if child.kind == ChildKind::Process {
            tracing::info!(
                process = %child.name,
                pid = child.pid.unwrap_or_default(),
                state = ?child.state,
                "process started"
            );
        }
    }
    spawn_supervision_log(&node);
    Ok(node)
}

/// A running node with its configuration.
pub struct App {
    node: Node,
    config: AppConfig,
    /// The families' HTTP routes, served by the gateway.
    routes: Vec<axum::Router>,
    _watch: Option<FileWatch>,
}

impl App {
    /// Where the configuration comes from, and what to add to it.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// The running node: call its services, read its registry, health and metrics.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node's sections of the configuration in force at start.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// Binds the gateway (JSON-RPC `/rpc`, WebSocket `/ws`, MCP `/mcp`, `/metrics`,
    /// `/health`, `/ready`, `/livez`) to `gateway.bind`.
    pub async fn listen(&self) -> Result<Listening, AppError> {
        let mcp = plexus_mcp::router(self.node.clone(), self.config.mcp.clone())?;
        let mut gateway = Gateway::builder(self.node.clone())
            .config(self.config.gateway.clone())
            .route("/mcp", mcp);
        for routes in &self.routes {
            gateway = gateway.merge(routes.clone());
        }
        let gateway = gateway.build()?;
        let listener = gateway.bind().await?;
        Ok(Listening { gateway, listener })
    }

    /// Serves the gateway until `shutdown` completes, then drains it and stops the
    /// node.
    pub async fn serve(
        self,
        listening: Listening,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ServeReport, AppError> {
        let Listening { gateway, listener } = listening;
        let served = gateway.serve(listener, shutdown).await;
        match &served {
            Ok(report) => tracing::info!(drained = report.drained, "gateway stopped"),
            Err(error) => tracing::error!(%error, "gateway failed"),
        }
        self.stop().await;
        served.map_err(AppError::from)
    }

    /// Serves the node's methods as MCP tools on stdin and stdout until the client
    /// closes stdin or `shutdown` completes, then stops the node.
    pub async fn serve_mcp_stdio(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AppError> {
        tracing::info!(node = %self.config.node.name, "serving MCP on stdio");
        let served = tokio::select! {
            served = plexus_mcp::serve_stdio(self.node.clone(), self.config.mcp.clone()) => served,
            () = shutdown => Ok(()),
        };
        self.stop().await;
        served.map_err(AppError::from)
    }

    /// Stops the node (services and processes in reverse start order, then the
    /// bus) and logs the order they stopped in.
    pub async fn stop(self) -> NodeShutdown {
        let report = self.node.shutdown(self.config.drain()).await;
        tracing::info!(
            node = %self.config.node.name,
            services = %report.services.order().join(", "),
            killed = %report.services.killed().join(", "),
            bus_drained = report.bus.drained,
            undelivered = report.bus.undelivered.len(),
            "stopped"
        );
        report
    }
}

/// The gateway, bound and about to serve.
pub struct Listening {
    gateway: Gateway,
    listener: TcpListener,
}

impl Listening {
    /// The address it listens on (the port the system chose, for `:0`).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
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
