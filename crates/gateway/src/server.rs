//! [`Gateway`]: builds the router over a node and serves it with graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::routing::{get, post};
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
use crate::{http, ws};

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
    /// handler reads the [`Caller`] from the request's extensions (or as an
    /// extractor) and checks scopes with [`Caller::check`].
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
        let router = Router::new()
            .route("/rpc", post(http::rpc))
            .route("/ws", get(ws::upgrade))
            .route("/metrics", get(http::metrics))
            .route("/health", get(http::health))
            .route("/ready", get(http::ready))
            .route("/livez", get(http::livez))
            .with_state(shared.clone())
            .merge(self.extra)
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                http::authenticate,
            ));
        Ok(Gateway { shared, router })
    }
}

/// The HTTP and WebSocket front of a node: `/rpc`, `/ws`, `/metrics`, `/health`,
/// `/ready`, `/livez` (see the crate docs).
pub struct Gateway {
    shared: Arc<Shared>,
    router: Router,
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
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ServeReport, GatewayError> {
        let addr = listener.local_addr()?;
        self.shared.config.check_bind(addr)?;
        let listener = Limited {
            inner: listener,
            permits: Arc::new(Semaphore::new(self.shared.config.max_connections)),
        };
        let stop = self.shared.shutdown.clone();
        let server = axum::serve(listener, self.router)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        let mut server = tokio::spawn(async move { server.await });
        tracing::info!(%addr, auth = self.shared.auth.enabled(), "gateway serving");
        tokio::select! {
            ended = &mut server => {
                return match ended {
                    Ok(Ok(())) => Ok(ServeReport { drained: true }),
                    Ok(Err(e)) => Err(GatewayError::Io(e)),
                    Err(e) => Err(GatewayError::Task(e.to_string())),
                };
            }
            () = shutdown => {}
        }
        tracing::info!(%addr, "gateway shutting down");
        self.shared.accepting.store(false, Ordering::Release);
        self.shared.shutdown.cancel();
        let tracker = self.shared.hub.tracker.clone();
        tracker.close();
        let drain = async {
            let _ = (&mut server).await;
            tracker.wait().await;
        };
        let drained = tokio::time::timeout(self.shared.config.shutdown_timeout(), drain)
            .await
            .is_ok();
        if !drained {
            server.abort();
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

/// A listener that holds at most `permits` connections open at once and turns
/// Nagle's algorithm off (requests and responses are small and latency matters).
struct Limited {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl axum::serve::Listener for Limited {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        // The semaphore is never closed, so the permit is always granted eventually.
        let permit = self.permits.clone().acquire_owned().await.ok();
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = io.set_nodelay(true);
        (
            Counted {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that gives its permit back when it closes.
struct Counted {
    io: TcpStream,
    _permit: Option<OwnedSemaphorePermit>,
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
