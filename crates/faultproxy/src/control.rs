//! The control API: add and remove toxics on a running proxy over HTTP on loopback.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /toxics` | `200` the toxics in force, by name, as JSON |
//! | `PUT /toxics/{name}` with a toxic as JSON (`{"kind":"latency","ms":100}`) | `204`; `400` with the reason when it is invalid |
//! | `DELETE /toxics/{name}` | `204`; `404` when there is none of that name |
//! | `GET /stats` | `200` `{"accepted":N,"cut":N}` |
//!
//! ```sh
//! curl -X PUT localhost:PORT/toxics/slow -d '{"kind":"latency","ms":250,"jitter_ms":50}'
//! curl -X DELETE localhost:PORT/toxics/slow
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Shared, Toxic};

/// The running control API; it stops when dropped.
#[derive(Debug)]
pub struct ControlServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ControlServer {
    pub(crate) async fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = Router::new()
            .route("/toxics", get(list))
            .route("/toxics/{name}", put(add).delete(remove))
            .route("/stats", get(stats))
            .with_state(shared);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::warn!(%error, "fault proxy control API stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// The address of the API.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn list(State(shared): State<Arc<Shared>>) -> Response {
    Json((**shared.toxics.borrow()).clone()).into_response()
}

async fn add(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let toxic: Toxic = match serde_json::from_slice(&body) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("invalid toxic: {e}")).into_response(),
    };
    match shared.add_toxic(&name, toxic) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn remove(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> StatusCode {
    if shared.remove_toxic(&name) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.stats();
    Json(serde_json::json!({"accepted": s.accepted, "cut": s.cut})).into_response()
}
