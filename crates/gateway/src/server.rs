//! [`Gateway`]: builds the router over a node and serves it with graceful shutdown.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use plexus_node::Node;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Caller};
use crate::config::GatewayConfig;
use crate::error::GatewayError;
use crate::metrics::GatewayMetrics;
use crate::ws::Hub;
use crate::{http, ui, ws};

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) config: GatewayConfig,
    pub(crate) auth: Auth,
    pub(crate) open: Caller,
    pub(crate) metrics: GatewayMetrics,
    pub(crate) accepting: AtomicBool,
    /// Cancelled when a graceful shutdown begins.
    pub(crate) shutdown: CancellationToken,
    pub(crate) hub: Hub,
}

impl Shared {
    pub(crate) fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }
}

/// Builds a [`Gateway`] over a running node.
#[must_use]
pub struct GatewayBuilder {
    node: Node,
    config: GatewayConfig,
    extra: Router,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Uses `config` instead of the defaults.
    pub fn config(mut self, config: GatewayConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves `router` under `path` (the hook for the MCP server: `.route("/mcp",
    /// mcp_router)`). Its requests pass the same auth as every other endpoint: a
    /// handler reads the [`Caller`] from the request's extensions (or with axum's
    /// `Extension` extractor) and checks scopes with [`Caller::check`].
    pub fn route(mut self, path: &str, router: Router) -> Self {
        self.extra = self.extra.nest(path, router);
        self
    }

    /// Merges `router`'s routes into the gateway's, behind the same auth.
    pub fn merge(mut self, router: Router) -> Self {
        self.extra = self.extra.merge(router);
        self
    }

    /// Validates the configuration, registers the gateway's metrics in the node's
    /// registry and builds the router. Build one gateway per node: a second would
    /// register its metrics twice.
    pub fn build(self) -> Result<Gateway, GatewayError> {
        self.config.validate()?;
        let shared = Arc::new(Shared {
            auth: Auth::new(&self.config.tokens),
            open: Caller::open(),
            metrics: GatewayMetrics::register(&self.node),
            node: self.node,
            config: self.config,
            accepting: AtomicBool::new(true),
            shutdown: CancellationToken::new(),
            hub: Hub::default(),
        });
        let ops = Router::new()
            .route("/metrics", get(http::metrics))
            .route("/health", get(http::health))
            .route("/ready", get(http::ready))
            .route("/livez", get(http::livez));
        let auth = axum::middleware::from_fn_with_state(shared.clone(), http::authenticate);
        let router = Router::new()
            .route("/rpc", post(http::rpc))
            .route("/ws", get(ws::upgrade))
            .merge(ops.clone())
            .merge(ui::router())
            .with_state(shared.clone())
            .merge(self.extra)
            .layer(auth.clone());
        // What a connection beyond `max_connections` is served: the ops endpoints.
        let ops = ops
            .fallback(http::saturated)
            .with_state(shared.clone())
            .layer(auth);
        Ok(Gateway {
            shared,
            router,
            ops,
        })
    }
}

/// The HTTP and WebSocket front of a node: `/rpc`, `/ws`, `/metrics`, `/health`,
/// `/ready`, `/livez` (see the crate docs).
pub struct Gateway {
    shared: Arc<Shared>,
    router: Router,
    /// The ops endpoints alone, for connections in the ops reserve.
    ops: Router,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("bind", &self.shared.config.bind)
            .field("auth", &self.shared.auth)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A builder over `node` with the default configuration.
    pub fn builder(node: Node) -> GatewayBuilder {
        GatewayBuilder {
            node,
            config: GatewayConfig::default(),
            extra: Router::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    /// The whole router, for embedding in another server.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Binds the configured address.
    pub async fn bind(&self) -> Result<TcpListener, GatewayError> {
        let addr = self.shared.config.bind;
        TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully:
    /// stops accepting connections, lets in-flight requests finish, closes every
    /// WebSocket with close frame 1001 ("going away") and detaches the external
    /// services registered over them, all within
    /// [`GatewayConfig::shutdown_timeout_ms`]; what is left then is dropped. It
    /// refuses a non-loopback listener when auth is off and not explicitly allowed.
    /// The node keeps running: shut it down after this returns.
    ///
    /// Connections are bounded: at most `max_connections` serve everything, then
    /// `ops_reserved_connections` more serve only the ops endpoints (so `/livez` and
    /// `/metrics` answer while the data plane is saturated), at most
    /// `max_connections_per_peer` per peer address; a client that takes longer than
    /// `header_read_timeout_ms` to send its headers, or leaves a keep-alive
    /// connection idle that long, is disconnected. Refusals are counted in
    /// `plexus_gateway_connections_refused_total{reason}`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ServeReport, GatewayError> {
        let addr = listener.local_addr()?;
        self.shared.config.check_bind(addr)?;
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.shared.config.header_read_timeout())
            .keep_alive(true);
        let connections = tokio_util::task::TaskTracker::new();
        let admission = Admission::new(&self.shared.config);
        let stop = self.shared.shutdown.clone();
        tracing::info!(%addr, auth = self.shared.auth.enabled(), "gateway serving");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // Beyond every place (the data plane's and the ops reserve), connections
            // wait in the kernel's backlog until one closes.
            let place = tokio::select! {
                place = admission.place() => place,
                () = &mut shutdown => break,
                () = stop.cancelled() => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors and the like: wait a moment, go on.
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
                () = stop.cancelled() => break,
            };
            let Some(ticket) = admission.admit(place, peer.ip()) else {
                self.shared.metrics.connection_refused("per_peer");
                continue;
            };
            let router = match ticket.class {
                Class::Full => self.router.clone(),
                Class::OpsOnly => {
                    self.shared.metrics.connection_refused("ops_only");
                    self.ops.clone()
                }
            };
            let _ = stream.set_nodelay(true);
            // The connection keeps its place for as long as its socket lives, also
            // after an upgrade to WebSocket hands the socket on.
            let io = TokioIo::new(Counted {
                io: stream,
                _ticket: ticket,
            });
            // Handlers may read the client's address (MCP caps sessions per peer).
            let router = tower::util::MapRequest::new(
                router,
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    request
                },
            );
            let connection = http
                .serve_connection(io, TowerToHyperService::new(router))
                .with_upgrades();
            let stop = self.shared.shutdown.clone();
            connections.spawn(async move {
                let mut connection = std::pin::pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    () = stop.cancelled() => {
                        // Finish the request in flight, then close.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = ended {
                    tracing::debug!(%error, %peer, "connection ended");
                }
            });
        }
        drop(listener);
        tracing::info!(%addr, "gateway shutting down");
        self.shared.accepting.store(false, Ordering::Release);
        self.shared.shutdown.cancel();
        let tracker = self.shared.hub.tracker.clone();
        tracker.close();
        connections.close();
        let drain = async {
            connections.wait().await;
            tracker.wait().await;
        };
        let drained = tokio::time::timeout(self.shared.config.shutdown_timeout(), drain)
            .await
            .is_ok();
        if !drained {
            tracing::warn!(%addr, "gateway shutdown timed out; remaining connections dropped");
        }
        Ok(ServeReport { drained })
    }
}

/// How a graceful shutdown went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeReport {
    /// Every in-flight request and WebSocket finished within the shutdown timeout.
    pub drained: bool,
}

/// Which router a connection is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Everything.
    Full,
    /// The ops endpoints only: the data plane's connections are all in use.
    OpsOnly,
}

/// Counts connections: the data plane's, the ops reserve, and each peer's.
#[derive(Clone)]
struct Admission {
    full: Arc<Semaphore>,
    ops: Arc<Semaphore>,
    peers: Arc<parking_lot::Mutex<std::collections::HashMap<IpAddr, usize>>>,
    per_peer: usize,
}

/// A connection's place; gives it back when dropped.
struct Ticket {
    class: Class,
    _permit: Option<OwnedSemaphorePermit>,
    peer: IpAddr,
    admission: Admission,
}

impl Admission {
    fn new(config: &GatewayConfig) -> Self {
        Self {
            full: Arc::new(Semaphore::new(config.max_connections)),
            ops: Arc::new(Semaphore::new(config.ops_reserved_connections)),
            peers: Arc::default(),
            per_peer: config.max_connections_per_peer,
        }
    }

    /// Waits for a free place: the data plane's first, else one of the reserve.
    async fn place(&self) -> (Class, Option<OwnedSemaphorePermit>) {
        if let Ok(p) = self.full.clone().try_acquire_owned() {
            return (Class::Full, Some(p));
        }
        tokio::select! {
            biased;
            p = self.full.clone().acquire_owned() => (Class::Full, p.ok()),
            p = self.ops.clone().acquire_owned() => (Class::OpsOnly, p.ok()),
        }
    }

    /// The connection from `peer` takes its `place`, or `None` (the place given
    /// back) when the peer holds its share already.
    fn admit(
        &self,
        (class, permit): (Class, Option<OwnedSemaphorePermit>),
        peer: IpAddr,
    ) -> Option<Ticket> {
        let mut peers = self.peers.lock();
        let held = peers.entry(peer).or_insert(0);
        if *held >= self.per_peer {
            return None;
        }
        *held += 1;
        Some(Ticket {
            class,
            _permit: permit,
            peer,
            admission: self.clone(),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut peers = self.admission.peers.lock();
        if let Some(held) = peers.get_mut(&self.peer) {
            *held -= 1;
            if *held == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

/// A connection that gives its place back when its socket closes.
struct Counted {
    io: TcpStream,
    _ticket: Ticket,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
