//! [`McpServer`]: the state every transport shares — the node, the tool catalog kept
//! in step with the registry, and the events of sessions and listeners.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use futures::StreamExt;
use parking_lot::Mutex;
use plexus_node::Node;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::metrics::McpMetrics;
use crate::{McpConfig, McpError};

/// How many [`McpEvent`]s a slow observer may fall behind before it lags.
const EVENT_CAPACITY: usize = 1024;

/// Something that happened to a client connection, for observers (tests, metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum McpEvent {
    /// A 2025-11-25 session was created by `initialize`.
    SessionOpened {
        /// Its `Mcp-Session-Id`.
        id: String,
    },
    /// A session's client opened its standalone stream (HTTP GET), where
    /// `notifications/tools/list_changed` is delivered.
    StreamOpened {
        /// The session.
        id: String,
    },
    /// A session ended: DELETE, idle expiry, or the server shut down. Its id now
    /// answers 404.
    SessionClosed {
        /// The session.
        id: String,
    },
    /// A session whose client never sent `notifications/initialized` within
    /// `init_timeout_ms` was closed.
    InitTimedOut {
        /// The session.
        id: String,
    },
    /// An `initialize` was refused: its client address holds
    /// `max_sessions_per_peer` live sessions.
    PeerFull {
        /// The client address.
        peer: String,
    },
    /// A 2026-07-28 `subscriptions/listen` stream was acknowledged.
    ListenStarted,
    /// A `subscriptions/listen` stream ended.
    ListenEnded,
    /// The tool list changed; every live session and listener is being told.
    ToolsChanged {
        /// How many tools are listed now.
        tools: usize,
    },
}

pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) config: McpConfig,
    catalog: ArcSwap<Catalog>,
    version: watch::Sender<u64>,
    events: broadcast::Sender<McpEvent>,
    pub(crate) metrics: McpMetrics,
    listeners: AtomicUsize,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.watcher.get_mut().take() {
            task.abort();
        }
    }
}

impl Shared {
    /// The tools listed now.
    pub(crate) fn catalog(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.catalog.load()
    }

    /// A receiver that wakes each time the tool list changes (changes coalesce).
    pub(crate) fn tool_changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub(crate) fn emit(&self, event: McpEvent) {
        match &event {
            McpEvent::PeerFull { .. } => self.metrics.refused("per_peer"),
            McpEvent::InitTimedOut { .. } => self.metrics.refused("init_timeout"),
            _ => {}
        }
        let _ = self.events.send(event);
    }

    /// Takes a listener slot, or `None` when `max_listeners` are open.
    pub(crate) fn try_listen(self: &Arc<Self>) -> Option<ListenerSlot> {
        let max = self.config.max_listeners;
        self.listeners
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                self.emit(McpEvent::ListenStarted);
                ListenerSlot(self.clone())
            })
    }

    /// Rebuilds the catalog; tells everyone when the tool list differs.
    fn refresh(&self) {
        let next = Catalog::of(self.node.registry());
        if *self.catalog.load_full() == next {
            return;
        }
        let tools = next.tools().len();
        self.catalog.store(Arc::new(next));
        self.version.send_modify(|v| *v += 1);
        self.emit(McpEvent::ToolsChanged { tools });
    }
}

/// One open `subscriptions/listen` stream; frees its slot when dropped.
pub(crate) struct ListenerSlot(Arc<Shared>);

impl Drop for ListenerSlot {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::AcqRel);
        self.0.emit(McpEvent::ListenEnded);
    }
}

/// The MCP server of one node: build it once, then serve it over HTTP
/// ([`McpServer::router`]) and stdio ([`McpServer::serve_io`]) at the same time.
///
/// Cheap to clone. It watches the node's registry from the moment it is built, so
/// its tool list follows services as they come and go; the watcher stops when the
/// last clone (and every router made from it) is dropped.
#[derive(Clone)]
pub struct McpServer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("node", &self.shared.node.name())
            .field("tools", &self.shared.catalog().tools().len())
            .finish_non_exhaustive()
    }
}

impl McpServer {
    /// Validates `config` and starts following `node`'s registry. Must be called
    /// inside a tokio runtime.
    pub fn new(node: Node, config: McpConfig) -> Result<Self, McpError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| McpError::NoRuntime)?;
        // Watch first, then read: no change can fall between the two.
        let mut changes = node.registry().watch();
        let catalog = Catalog::of(node.registry());
        let metrics = McpMetrics::register(&node);
        let shared = Arc::new(Shared {
            node,
            config,
            catalog: ArcSwap::from_pointee(catalog),
            version: watch::Sender::new(0),
            events: broadcast::Sender::new(EVENT_CAPACITY),
            metrics,
            listeners: AtomicUsize::new(0),
            watcher: Mutex::new(None),
        });
        let weak = Arc::downgrade(&shared);
        let task = runtime.spawn(async move {
            // Every change (or a lag, which may hide some) means: read again.
            while changes.next().await.is_some() {
                let Some(shared) = weak.upgrade() else { break };
                shared.refresh();
            }
        });
        *shared.watcher.lock() = Some(task);
        Ok(Self { shared })
    }

    /// The node served.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The configuration in force.
    pub fn config(&self) -> &McpConfig {
        &self.shared.config
    }

    /// The names of the tools listed now, sorted.
    pub fn tool_names(&self) -> Vec<String> {
        self.shared
            .catalog()
            .tools()
            .iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// Every [`McpEvent`] from now on. Bounded: an observer more than 1024 events
    /// behind gets `Lagged` and misses the oldest.
    pub fn events(&self) -> broadcast::Receiver<McpEvent> {
        self.shared.events.subscribe()
    }

    /// How many `subscriptions/listen` streams are open.
    pub fn listeners(&self) -> usize {
        self.shared.listeners.load(Ordering::Acquire)
    }
}
