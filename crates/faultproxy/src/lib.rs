//! A TCP fault proxy: sits between a client and a real server on loopback and breaks
//! the connection on demand, so fault tests never touch the shared servers.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use plexus_faultproxy::{FaultProxy, Mode};
//! let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await?;
//! let url = format!("postgres://postgres@{}/test", proxy.addr());
//! // … connect a client to `url` …
//! proxy.set_mode(Mode::Refuse);   // cut every open connection and refuse new ones
//! proxy.set_mode(Mode::Forward);  // the database is back
//! # Ok(()) }
//! ```
//!
//! Modes ([`Mode`]): `Forward` copies bytes both ways; `Refuse` closes every open
//! connection and closes new ones at once (a server that went away); `Down` closes
//! every open connection and the listening socket too, so a new connection is
//! refused by the kernel (a server whose process is gone: `ECONNREFUSED`), and the
//! proxy listens again on the same address when the mode changes (await
//! [`FaultProxy::settled`] to know it has); `Blackhole`
//! keeps connections open but forwards nothing (a network partition: clients hang
//! until their own timeouts); `Delay(d)` forwards every chunk after `d`. Changing the
//! mode applies to open connections too. The proxy counts the connections it accepted
//! and the ones it cut.
//!
//! ## Toxics
//!
//! On top of the mode, named [`Toxic`]s (Toxiproxy's vocabulary) shape the traffic
//! of every connection, open or new, in both directions: `latency` (with `jitter`),
//! `bandwidth`, `slicer`, `reset_peer`, `blackhole` and `timeout`. Add and remove them
//! with [`FaultProxy::add_toxic`] and [`FaultProxy::remove_toxic`], or over HTTP
//! through the control API ([`FaultProxy::serve_control`], module [`control`]).

pub mod control;
mod toxic;

pub use toxic::{Toxic, ToxicError};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The size of the copy buffer per direction.
const CHUNK: usize = 16 * 1024;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Copy bytes both ways.
    Forward,
    /// Close every connection, and every new one at once.
    Refuse,
    /// Close every connection and stop listening: connecting is refused.
    Down,
    /// Keep connections but forward nothing.
    Blackhole,
    /// Forward each chunk after this delay.
    Delay(Duration),
}

/// Counters of a proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed by the proxy because of a fault.
    pub cut: u64,
}

struct Shared {
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    /// The mode the listener last applied (whether it listens).
    applied: watch::Sender<Mode>,
    /// The toxics in force, by name.
    toxics: watch::Sender<Arc<BTreeMap<String, Toxic>>>,
    accepted: AtomicU64,
    cut: AtomicU64,
}

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &*self.shared.mode.borrow())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end with their copy tasks when the mode channel closes.
        self.shared.mode.send_replace(Mode::Refuse);
    }
}

impl FaultProxy {
    /// Starts forwarding from a free port on 127.0.0.1 to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            mode: watch::Sender::new(Mode::Forward),
            applied: watch::Sender::new(Mode::Forward),
            toxics: watch::Sender::new(Arc::new(BTreeMap::new())),
            accepted: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mode in force.
    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Changes the mode; open connections follow at once.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// Waits until the listener follows the mode in force: closed in `Down`,
    /// listening again after it. Other modes apply at once.
    pub async fn settled(&self) {
        let mut applied = self.shared.applied.subscribe();
        loop {
            let want = *self.shared.mode.borrow();
            if applied
                .wait_for(|a| (*a == Mode::Down) == (want == Mode::Down))
                .await
                .is_err()
            {
                return;
            }
            if *self.shared.mode.borrow() == want {
                return;
            }
        }
    }

    /// Adds (or replaces) the toxic called `name`; open connections follow at once.
    pub fn add_toxic(&self, name: &str, toxic: Toxic) -> Result<(), ToxicError> {
        self.shared.add_toxic(name, toxic)
    }

    /// Removes the toxic called `name`; whether there was one.
    pub fn remove_toxic(&self, name: &str) -> bool {
        self.shared.remove_toxic(name)
    }

    /// The toxics in force, by name.
    pub fn toxics(&self) -> BTreeMap<String, Toxic> {
        (**self.shared.toxics.borrow()).clone()
    }

    /// Serves the control API on a free port of 127.0.0.1 (see [`control`]); it
    /// stops when the returned handle is dropped.
    pub async fn serve_control(&self) -> std::io::Result<control::ControlServer> {
        control::ControlServer::start(self.shared.clone()).await
    }

    /// The counters.
    pub fn stats(&self) -> ProxyStats {
        self.shared.stats()
    }
}

impl Shared {
    fn add_toxic(&self, name: &str, toxic: Toxic) -> Result<(), ToxicError> {
        toxic.validate()?;
        if name.is_empty() || name.len() > 64 {
            return Err(ToxicError::new("name", "1 to 64 characters"));
        }
        self.toxics.send_modify(|t| {
            Arc::make_mut(t).insert(name.to_owned(), toxic);
        });
        Ok(())
    }

    fn remove_toxic(&self, name: &str) -> bool {
        let mut removed = false;
        self.toxics.send_if_modified(|t| {
            removed = Arc::make_mut(t).remove(name).is_some();
            removed
        });
        removed
    }

    fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            cut: self.cut.load(Ordering::Relaxed),
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let addr = listener.local_addr().ok();
    let mut listener = Some(listener);
    let mut mode = shared.mode.subscribe();
    loop {
        let current = *mode.borrow_and_update();
        match (current, listener.is_some()) {
            (Mode::Down, true) => {
                listener = None;
                shared.applied.send_replace(Mode::Down);
                continue;
            }
            (Mode::Down, false) => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            (_, false) => {
                let Some(addr) = addr else { return };
                match rebind(addr) {
                    Ok(l) => listener = Some(l),
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "fault proxy: cannot listen again");
                        return;
                    }
                }
                shared.applied.send_replace(current);
                continue;
            }
            (_, true) => {}
        }
        let Some(open) = listener.as_ref() else {
            continue;
        };
        let accepted = tokio::select! {
            accepted = open.accept() => accepted,
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        if *shared.mode.borrow() == Mode::Refuse {
            shared.cut.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, shared.clone()));
    }
}

/// Listens on `addr` again (the address may still have connections in TIME_WAIT).
fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        tracing::debug!(upstream = %shared.upstream, "fault proxy: upstream refused");
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pipe(
        client_read,
        server_write,
        shared.mode.subscribe(),
        shared.toxics.subscribe(),
    );
    let down = pipe(
        server_read,
        client_write,
        shared.mode.subscribe(),
        shared.toxics.subscribe(),
    );
    let cut = tokio::select! {
        cut = up => cut,
        cut = down => cut,
    };
    if cut {
        shared.cut.fetch_add(1, Ordering::Relaxed);
    }
}

/// Copies one direction under the mode and the toxics; returns whether a fault ended it.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    mut toxics: watch::Receiver<Arc<BTreeMap<String, Toxic>>>,
) -> bool {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let current = *mode.borrow_and_update();
        let shaping = toxic::Shaping::of(toxics.borrow_and_update().values());
        match current {
            Mode::Refuse | Mode::Down => return true,
            Mode::Blackhole => {
                // Hold the connection, read nothing, until the mode changes.
                if mode.changed().await.is_err() {
                    return true;
                }
                continue;
            }
            Mode::Forward | Mode::Delay(_) => {}
        }
        if let Some(stall) = shaping.stall {
            // Forward nothing; end the connection when the stall says so.
            let ends = async {
                match stall {
                    toxic::Stall::Forever => std::future::pending::<()>().await,
                    toxic::Stall::Close(after) | toxic::Stall::Reset(after) => {
                        tokio::time::sleep(after).await;
                    }
                }
            };
            tokio::select! {
                () = ends => {
                    if matches!(stall, toxic::Stall::Reset(_)) {
                        // A zero linger makes the close an RST, as a peer reset would.
                        let _ = to.as_ref().set_zero_linger();
                    }
                    return true;
                }
                changed = mode.changed() => if changed.is_err() { return true },
                changed = toxics.changed() => if changed.is_err() { return true },
            }
            continue;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return true;
                }
                continue;
            }
            changed = toxics.changed() => {
                if changed.is_err() {
                    return true;
                }
                continue;
            }
        };
        if let Mode::Delay(d) = current {
            tokio::time::sleep(d).await;
        }
        if let Some(delay) = shaping.delay(n) {
            tokio::time::sleep(delay).await;
        }
        if matches!(*mode.borrow(), Mode::Refuse | Mode::Down) {
            return true;
        }
        for (i, slice) in buf[..n]
            .chunks(shaping.slice.unwrap_or(n).max(1))
            .enumerate()
        {
            if i > 0 && !shaping.slice_delay.is_zero() {
                tokio::time::sleep(shaping.slice_delay).await;
            }
            if to.write_all(slice).await.is_err() {
                return false;
            }
        }
    }
}
