//! `/ui`: the operator's view inside the node.
//!
//! One page of plain JavaScript (no framework, no build step), embedded in the binary
//! with `include_str!` and served with a strict Content-Security-Policy; it needs no
//! network beyond the node. Its pages: system health (each component with its
//! reason), services and instances (status, breaker, calls/s, errors, p99), the bus
//! (topics seen, rates, lag, drops, dead letters), the live tail of calls and events
//! with their correlation ids, the DataStore, jobs (queues by state, the
//! dead-letter list with bulk requeue, pause and resume) and inference (tokens and
//! cost per model, deployments and their breakers), each shown as absent when its
//! family is not in the node, configuration (versions, the difference between two,
//! rollback) and the audit trail. The services page charts calls/s and p99 over
//! time in SVG drawn by the page itself.
//!
//! | path | what | token |
//! | --- | --- | --- |
//! | `GET /ui`, `GET /ui/assets/*` | the page and its script and style (nothing secret) | none |
//! | `GET /ui/live` | WebSocket: the live tail (docs/operators-view.md) | `ops`, sent as the first message |
//! | `GET /ui/api/whoami` | the token's name and what the page may offer it (200 either way) | checked by itself |
//! | `GET /ui/api/{health,services,bus,families,config,config/diff,audit,datastore,jobs,jobs/dead,inference,metrics}` | read views | `ops` |
//!
//! The page keeps the token in the tab's `sessionStorage` and sends it as a bearer
//! token. Reading needs `ops`; actions (a configuration rollback, requeuing dead
//! jobs, pausing a queue) are sent to `POST /rpc` as the node's methods
//! (`node.config_rollback`, `jobs.requeue`, `jobs.pause`, `jobs.resume`) and so
//! need their `call:` scope (an `admin` token has them), after a confirmation.
//! Long lists (the live tail, the audit trail, dead jobs) render only the rows in
//! view, so 100,000 rows stay responsive, and are searched as they are typed.

pub(crate) mod api;
pub(crate) mod live;
pub mod stats;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::server::Shared;

/// The embedded files: name, content type, body.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
];

/// What the page may load and connect to: itself only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is served without a token: the page and its assets (the data
/// behind them needs one), and the live socket, which authenticates itself.
pub(crate) fn is_public(path: &str) -> bool {
    matches!(path, "/ui" | "/ui/" | "/ui/live" | "/ui/api/whoami")
        || path
            .strip_prefix("/ui/assets/")
            .is_some_and(|name| !name.contains('/'))
}

/// The `/ui` routes.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/live", get(live::upgrade))
        .route("/ui/api/whoami", get(api::whoami))
        .route("/ui/api/health", get(api::health))
        .route("/ui/api/services", get(api::services))
        .route("/ui/api/bus", get(api::bus))
        .route("/ui/api/families", get(api::families))
        .route("/ui/api/metrics", get(api::metrics))
        .route("/ui/api/config", get(api::config))
        .route("/ui/api/config/diff", get(api::config_diff))
        .route("/ui/api/audit", get(api::audit))
        .route("/ui/api/datastore", get(api::datastore))
        .route("/ui/api/jobs", get(api::jobs))
        .route("/ui/api/jobs/dead", get(api::jobs_dead))
        .route("/ui/api/inference", get(api::inference))
}

fn serve(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn index() -> Response {
    serve("index.html")
}

async fn asset(Path(name): Path<String>) -> Response {
    if name == "index.html" {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    }
    serve(&name)
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn only_the_page_its_assets_whoami_and_the_socket_skip_the_auth_layer() {
        for path in [
            "/ui",
            "/ui/",
            "/ui/assets/app.js",
            "/ui/live",
            "/ui/api/whoami",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/ui/api/health",
            "/ui/api/audit",
            "/uix",
            "/ui/livez",
            "/rpc",
            "/metrics",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }
}
