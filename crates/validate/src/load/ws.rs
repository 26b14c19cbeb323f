//! WebSocket sessions for a load: long-lived connections to the node's `/ws`, opened
//! before the clock starts, carrying JSON-RPC 2.0 requests whose answers are matched
//! to them by id.
//!
//! Each session is one task that owns its socket: it writes what callers queue and
//! hands every answer to the request waiting for its id. When the connection drops
//! mid-run, every request still waiting on it ends at once as failed
//! (`ws session lost`, never left to look like a timeout or forgotten), requests made
//! while it is down fail as `ws session down`, and the session connects again, up to
//! [`MAX_RECONNECTS`] times in a row; a session still down when the load ends is
//! lost, and the report says how many were. An answer that arrives after its request was given up
//! (timed out) is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{Outcome, classify_value};

/// Attempts in a row to connect a dropped session again before it counts as lost.
pub const MAX_RECONNECTS: u32 = 5;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a load's sessions fared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Sessions opened before the clock started.
    pub opened: u64,
    /// Times a session's connection dropped mid-run.
    pub dropped: u64,
    /// Times a dropped session connected again.
    pub reconnected: u64,
    /// Sessions down when the load ended: dropped and not connected again (their
    /// [`MAX_RECONNECTS`] attempts used up, or still under way).
    pub lost: u64,
    /// Requests in flight on a connection when it dropped (counted as failed).
    pub failed_in_flight: u64,
}

/// Why sessions could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("WebSocket session {index} to {url}: {reason}")]
pub struct OpenError {
    /// Which session (0-based).
    pub index: usize,
    /// The URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    reconnected: AtomicU64,
    failed_in_flight: AtomicU64,
}

/// A load's open sessions. Dropping it closes them.
#[derive(Debug)]
pub struct Sessions {
    sessions: Vec<Session>,
    next: AtomicUsize,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Sessions {
    /// Opens `n` sessions to `url` (`ws://127.0.0.1:PORT/ws`), one after another;
    /// the first that cannot connect is the error (and those opened are closed).
    pub async fn open(url: String, n: usize) -> Result<Self, OpenError> {
        let counters = Arc::new(Counters::default());
        let (stop, _) = watch::channel(false);
        let mut sessions = Vec::with_capacity(n);
        for index in 0..n {
            let socket = connect(&url).await.map_err(|reason| OpenError {
                index,
                url: url.clone(),
                reason,
            })?;
            sessions.push(Session::start(
                url.clone(),
                socket,
                counters.clone(),
                stop.subscribe(),
            ));
        }
        Ok(Self {
            sessions,
            next: AtomicUsize::new(0),
            counters,
            stop,
        })
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The next session, round-robin.
    pub(crate) fn next(&self) -> &Session {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        &self.sessions[i]
    }

    /// Session `i` (modulo their number).
    pub(crate) fn get(&self, i: usize) -> &Session {
        &self.sessions[i % self.sessions.len()]
    }

    /// How they fared so far.
    pub fn stats(&self) -> SessionStats {
        let c = &self.counters;
        SessionStats {
            opened: self.sessions.len() as u64,
            dropped: c.dropped.load(Ordering::Relaxed),
            reconnected: c.reconnected.load(Ordering::Relaxed),
            lost: self.sessions.iter().filter(|s| !s.is_up()).count() as u64,
            failed_in_flight: c.failed_in_flight.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Result<Socket, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no connection within {CONNECT_TIMEOUT:?}")),
    }
}

/// What a session's task and its callers share.
#[derive(Default)]
struct State {
    /// Where requests go while the connection is up; `None` while it is down.
    out: Option<mpsc::UnboundedSender<Message>>,
    /// The requests waiting for an answer, by id.
    pending: HashMap<u64, oneshot::Sender<Outcome>>,
}

/// One session.
#[derive(Debug)]
pub(crate) struct Session {
    state: Arc<Mutex<State>>,
    ids: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("up", &self.out.is_some())
            .field("pending", &self.pending.len())
            .finish()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Session {
    fn start(
        url: String,
        socket: Socket,
        counters: Arc<Counters>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        tokio::spawn(drive(url, socket, state.clone(), counters, stop));
        Self {
            state,
            ids: AtomicU64::new(1),
        }
    }

    /// Whether its connection is up.
    fn is_up(&self) -> bool {
        lock(&self.state).out.is_some()
    }

    /// Sends one JSON-RPC request (its `id` replaced by the session's own) and waits
    /// up to `timeout` for the answer.
    pub(crate) async fn call(&self, body: &[u8], timeout: Duration) -> Outcome {
        let Ok(serde_json::Value::Object(mut request)) = serde_json::from_slice(body) else {
            return Outcome::Failed("invalid request".into());
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        request.insert("id".into(), id.into());
        let request = serde_json::Value::Object(request);
        let (tx, rx) = oneshot::channel();
        {
            let mut state = lock(&self.state);
            let Some(out) = state.out.clone() else {
                return Outcome::Failed("ws session down".into());
            };
            if out.send(Message::text(request.to_string())).is_err() {
                return Outcome::Failed("ws session down".into());
            }
            // Under the same lock as the drop that fails them all: a request is either
            // failed with the connection it went out on or waits for its answer.
            state.pending.insert(id, tx);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Failed("ws session lost".into()),
            Err(_) => {
                lock(&self.state).pending.remove(&id);
                Outcome::TimedOut
            }
        }
    }
}

/// A session's life: serve its connection; when it drops, fail what was in flight
/// and connect again, at most [`MAX_RECONNECTS`] attempts in a row.
async fn drive(
    url: String,
    socket: Socket,
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut socket = Some(socket);
    loop {
        if let Some(s) = socket.take() {
            let stopped = serve(s, &state, &mut stop).await;
            let in_flight: Vec<_> = {
                let mut state = lock(&state);
                state.out = None;
                state.pending.drain().map(|(_, tx)| tx).collect()
            };
            if stopped {
                return;
            }
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            counters
                .failed_in_flight
                .fetch_add(in_flight.len() as u64, Ordering::Relaxed);
            for tx in in_flight {
                let _ = tx.send(Outcome::Failed("ws session lost".into()));
            }
        }
        let mut attempts = 0;
        while socket.is_none() && attempts < MAX_RECONNECTS {
            attempts += 1;
            tokio::select! {
                _ = stop.changed() => return,
                connected = connect(&url) => match connected {
                    Ok(s) => socket = Some(s),
                    // Back off a little, more each time (at most 0.5 s), unless stopped.
                    Err(_) => tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(Duration::from_millis(100) * attempts) => {}
                    },
                },
            }
        }
        if socket.is_none() {
            // Lost: down from now on, and counted so by `Sessions::stats`.
            return;
        }
        counters.reconnected.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves one connection until it drops (`false`) or the load is over (`true`).
async fn serve(socket: Socket, state: &Mutex<State>, stop: &mut watch::Receiver<bool>) -> bool {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    lock(state).out = Some(tx);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return true;
            }
            outgoing = rx.recv() => {
                // The sender lives in `state` until this function clears it.
                let Some(message) = outgoing else { return false };
                if sink.send(message).await.is_err() {
                    return false;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => answer(state, text.as_bytes()),
                Some(Ok(Message::Binary(bytes))) => answer(state, &bytes),
                Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
                // Pings are answered by tungstenite as it reads.
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Hands an answer to the request waiting for its id; anything else (a late answer,
/// a notification) is dropped.
fn answer(state: &Mutex<State>, text: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        return;
    };
    let Some(id) = value.get("id").and_then(serde_json::Value::as_u64) else {
        return;
    };
    let waiting = lock(state).pending.remove(&id);
    if let Some(tx) = waiting {
        let _ = tx.send(classify_value(&value));
    }
}
