//! [`GatewayConfig`]: where the gateway listens, every bound it enforces, and its tokens.
//!
//! Every limit the gateway applies is a field here, with its default. The configuration
//! is checked by [`GatewayConfig::validate`] before anything binds: a bound of zero, a
//! malformed scope, a short or repeated token, or a non-loopback address without
//! tokens is refused with an error that names the field (and the token by its name,
//! never by its value).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::Scope;

/// The port the gateway listens on by default: `127.0.0.1:7700`. Fixed so that the CLI
/// and clients find a local node without being told; tests bind port 0 instead.
pub const DEFAULT_PORT: u16 = 7700;

/// What a WebSocket's socket layer gathers before writing to the network, in bytes.
pub const WS_WRITE_BUFFER_BYTES: usize = 128 << 10;

/// The shortest token accepted, in bytes: shorter secrets are guessable.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The gateway's configuration. `serde` reads it from the `[gateway]` section of the
/// node's configuration; every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The address to listen on (default `127.0.0.1:7700`, see [`DEFAULT_PORT`]). A
    /// non-loopback address needs `tokens` or `allow_public_without_auth`.
    pub bind: SocketAddr,
    /// The largest HTTP request body, in bytes (default 1 MiB). A larger body gets
    /// HTTP 413 and JSON-RPC error -32008.
    pub max_body_bytes: usize,
    /// The most requests in one JSON-RPC batch (default 100). A larger batch gets one
    /// -32600 error.
    pub max_batch: usize,
    /// The largest WebSocket message, in bytes (default 1 MiB). A larger message closes
    /// the socket with close code 1009.
    pub max_ws_message_bytes: usize,
    /// The most messages queued for sending on one WebSocket (default 256). When it is
    /// full, event forwarding waits and the subscription's overflow policy applies.
    pub ws_send_queue: usize,
    /// The most bytes the socket layer of one WebSocket may hold unsent (pongs and
    /// messages its client does not read; default 4 MiB, at least
    /// `max_ws_message_bytes` + 128 KiB). Past it pongs are coalesced into one, and
    /// a message that does not fit closes the socket with 1008 (policy violation),
    /// counted in `plexus_gateway_ws_closed_total{reason="send_buffer_full"}`.
    pub max_ws_send_buffer_bytes: usize,
    /// The most TCP connections open at once, HTTP and WebSocket together (default
    /// 1024). Beyond it, `ops_reserved_connections` more are served the ops
    /// endpoints only; further ones wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Connections kept for `/livez`, `/ready`, `/health` and `/metrics` when the
    /// data plane's `max_connections` are all in use (default 32): on them every
    /// other path answers 503, so operators can still see a saturated node.
    pub ops_reserved_connections: usize,
    /// The most connections one peer address may hold open (default 512); one more
    /// is closed at once and counted.
    pub max_connections_per_peer: usize,
    /// How long a client may take to send a request's headers, and how long an
    /// idle keep-alive connection is kept before the next request, in milliseconds
    /// (default 10,000). A connection past it is closed.
    pub header_read_timeout_ms: u64,
    /// The most calls one WebSocket client may have in flight (default 256); beyond
    /// that a call is answered at once with -32007.
    pub max_ws_in_flight: usize,
    /// The most subscriptions one WebSocket may hold (default 64).
    pub max_ws_subscriptions: usize,
    /// The capacity of each priority lane of a WebSocket subscription that does not
    /// ask for one (default 256).
    pub ws_subscription_capacity: usize,
    /// The most service instances one WebSocket may register (default 16).
    pub max_ws_registrations: usize,
    /// The most calls the node may have waiting for answers from one external service
    /// connection (default 1024); beyond that calls to it fail as unavailable and the
    /// call path tries another instance.
    pub max_pending_calls: usize,
    /// How long an external service's instance stays registered (Unhealthy) after its
    /// socket drops, in milliseconds, so a reconnect within it keeps its registration
    /// (default 30,000). Calls never wait for it: the instance is Unhealthy at once.
    pub detach_grace_ms: u64,
    /// How long a graceful shutdown waits for in-flight requests and WebSockets before
    /// it stops them, in milliseconds (default 10,000).
    pub shutdown_timeout_ms: u64,
    /// Bearer tokens. Empty (the default) turns auth off, which is allowed only on a
    /// loopback address unless `allow_public_without_auth` says otherwise.
    pub tokens: Vec<TokenConfig>,
    /// Serve a non-loopback address without tokens (default false).
    pub allow_public_without_auth: bool,
    /// Origins (`https://app.example.com`) allowed to open a WebSocket besides
    /// loopback ones (default none). Browsers send `Origin` and do not apply CORS to
    /// WebSockets; a connection from any other origin is refused with 403.
    pub allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_PORT)),
            max_body_bytes: 1 << 20,
            max_batch: 100,
            max_ws_message_bytes: 1 << 20,
            ws_send_queue: 256,
            max_ws_send_buffer_bytes: 4 << 20,
            max_connections: 1024,
            ops_reserved_connections: 32,
            max_connections_per_peer: 512,
            header_read_timeout_ms: 10_000,
            max_ws_in_flight: 256,
            max_ws_subscriptions: 64,
            ws_subscription_capacity: 256,
            max_ws_registrations: 16,
            max_pending_calls: 1024,
            detach_grace_ms: 30_000,
            shutdown_timeout_ms: 10_000,
            tokens: Vec::new(),
            allow_public_without_auth: false,
            allowed_origins: Vec::new(),
        }
    }
}

/// One bearer token and what it may do.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs, metrics and `CallContext::caller` (the secret never appears).
    pub name: String,
    /// The secret a client sends as `Authorization: Bearer <token>`.
    pub token: Secret,
    /// What it allows: `admin`, `ops`, `call:<pattern>`, `publish:<pattern>`,
    /// `subscribe:<pattern>`, `register:<pattern>` (see [`Scope`]).
    pub scopes: Vec<String>,
}

impl TokenConfig {
    /// A token called `name` with `secret` and `scopes`.
    pub fn new(
        name: impl Into<String>,
        secret: impl Into<String>,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            token: Secret::new(secret),
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A secret string whose `Debug` shows `"<redacted>"`. It has no `Display`.
/// `Serialize` writes the secret itself, so that a configuration round-trips: never
/// log a serialized configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret, for comparing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is out of range.
    #[error("invalid gateway configuration: `{field}` {reason}")]
    Invalid {
        /// The field, such as `max_batch` or `tokens[2].name`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A token's scope cannot be read.
    #[error("invalid gateway configuration: token `{token}` scope {index} ({scope:?}) {reason}")]
    Scope {
        /// The token's name.
        token: String,
        /// The scope's position in its list.
        index: usize,
        /// The scope as written.
        scope: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A non-loopback address without tokens and without the explicit permission.
    #[error(
        "refusing to serve {bind} without auth: it is not a loopback address; configure `tokens`, or set `allow_public_without_auth = true` to accept anyone"
    )]
    PublicWithoutAuth {
        /// The address.
        bind: SocketAddr,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl GatewayConfig {
    /// How long an external service's instance stays after its socket drops.
    pub fn detach_grace(&self) -> Duration {
        Duration::from_millis(self.detach_grace_ms)
    }

    /// How long headers may take, and an idle keep-alive connection may wait.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// How long a graceful shutdown waits.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }

    /// Whether requests must carry a token.
    pub fn auth_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks every field, naming the first that is wrong, and that serving `bind`
    /// without tokens is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bounds: [(&str, usize, usize); 12] = [
            ("max_body_bytes", self.max_body_bytes, 1 << 30),
            ("max_batch", self.max_batch, 1 << 16),
            ("max_ws_message_bytes", self.max_ws_message_bytes, 1 << 30),
            ("ws_send_queue", self.ws_send_queue, 1 << 20),
            ("max_connections", self.max_connections, 1 << 20),
            ("max_ws_in_flight", self.max_ws_in_flight, 1 << 20),
            ("max_ws_subscriptions", self.max_ws_subscriptions, 1 << 16),
            (
                "ws_subscription_capacity",
                self.ws_subscription_capacity,
                1 << 20,
            ),
            ("max_ws_registrations", self.max_ws_registrations, 1 << 16),
            ("max_pending_calls", self.max_pending_calls, 1 << 20),
            (
                "ops_reserved_connections",
                self.ops_reserved_connections,
                1 << 16,
            ),
            (
                "max_connections_per_peer",
                self.max_connections_per_peer,
                1 << 20,
            ),
        ];
        for (field, value, max) in bounds {
            if value == 0 || value > max {
                return Err(invalid(
                    field,
                    format!("is {value}; it must be between 1 and {max}"),
                ));
            }
        }
        let least = self
            .max_ws_message_bytes
            .saturating_add(WS_WRITE_BUFFER_BYTES);
        if self.max_ws_send_buffer_bytes < least || self.max_ws_send_buffer_bytes > 1 << 32 {
            return Err(invalid(
                "max_ws_send_buffer_bytes",
                format!(
                    "is {}; it must be at least max_ws_message_bytes + {WS_WRITE_BUFFER_BYTES} ({least}) and at most {}",
                    self.max_ws_send_buffer_bytes,
                    1u64 << 32
                ),
            ));
        }
        if self.header_read_timeout_ms == 0 || self.header_read_timeout_ms > 3_600_000 {
            return Err(invalid(
                "header_read_timeout_ms",
                format!(
                    "is {}; it must be between 1 and 3600000",
                    self.header_read_timeout_ms
                ),
            ));
        }
        if self.shutdown_timeout_ms == 0 {
            return Err(invalid("shutdown_timeout_ms", "must be longer than zero"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if token.name.is_empty() || token.name.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    format!("tokens[{i}].name"),
                    "must be non-empty text without control characters",
                ));
            }
            if !names.insert(token.name.as_str()) {
                return Err(invalid(
                    format!("tokens[{i}].name"),
                    format!("`{}` is used by another token", token.name),
                ));
            }
            let secret = token.token.expose();
            if secret.len() < MIN_TOKEN_BYTES {
                return Err(invalid(
                    format!("tokens[{i}].token"),
                    format!(
                        "of `{}` is {} bytes; tokens must be at least {MIN_TOKEN_BYTES}",
                        token.name,
                        secret.len()
                    ),
                ));
            }
            if !secret.chars().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(
                    format!("tokens[{i}].token"),
                    format!("of `{}` must be printable ASCII without spaces", token.name),
                ));
            }
            if self.tokens[..i].iter().any(|t| t.token == token.token) {
                return Err(invalid(
                    format!("tokens[{i}].token"),
                    format!("of `{}` is the same as another token's", token.name),
                ));
            }
            if token.scopes.is_empty() {
                return Err(invalid(
                    format!("tokens[{i}].scopes"),
                    format!("of `{}` is empty; a token must allow something", token.name),
                ));
            }
            for (index, scope) in token.scopes.iter().enumerate() {
                scope.parse::<Scope>().map_err(|e| ConfigError::Scope {
                    token: token.name.clone(),
                    index,
                    scope: scope.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        self.check_bind(self.bind)
    }

    /// Refuses a non-loopback `addr` when auth is off and not explicitly allowed.
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), ConfigError> {
        if !addr.ip().is_loopback() && !self.auth_enabled() && !self.allow_public_without_auth {
            return Err(ConfigError::PublicWithoutAuth { bind: addr });
        }
        Ok(())
    }
}

/// The gateway's section as the node's configuration store checks it, on start and on
/// every runtime change: the same rules as [`GatewayConfig::validate`], with the field
/// named relative to `[gateway]`.
impl plexus_config::Validate for GatewayConfig {
    fn validate(&self) -> Result<(), plexus_config::FieldErrors> {
        GatewayConfig::validate(self).map_err(|e| match e {
            ConfigError::Invalid { field, reason } => {
                plexus_config::FieldErrors::one(field, reason)
            }
            ConfigError::Scope {
                ref token, index, ..
            } => {
                let field = format!("tokens.{token}.scopes.{index}");
                plexus_config::FieldErrors::one(field, e.to_string())
            }
            other @ ConfigError::PublicWithoutAuth { .. } => {
                plexus_config::FieldErrors::one("bind", other.to_string())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scopes: &[&str]) -> TokenConfig {
        TokenConfig::new("ci", "0123456789abcdef-secret", scopes.iter().copied())
    }

    #[test]
    fn the_default_serves_loopback_without_tokens() {
        let config = GatewayConfig::default();
        assert_eq!(config.bind.to_string(), "127.0.0.1:7700");
        config.validate().unwrap();
        assert!(!config.auth_enabled());
    }

    #[test]
    fn a_public_bind_needs_tokens_or_explicit_permission() {
        let mut config = GatewayConfig {
            bind: "0.0.0.0:7700".parse().unwrap(),
            ..GatewayConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PublicWithoutAuth { .. })
        ));
        config.allow_public_without_auth = true;
        config.validate().unwrap();
        config.allow_public_without_auth = false;
        config.tokens.push(token(&["admin"]));
        config.validate().unwrap();
    }

    #[test]
    fn each_bad_field_is_named_and_secrets_never_show() {
        let zero = GatewayConfig {
            max_batch: 0,
            ..GatewayConfig::default()
        };
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("`max_batch`")
        );

        let short = GatewayConfig {
            tokens: vec![TokenConfig::new("ci", "short", ["admin"])],
            ..GatewayConfig::default()
        };
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("tokens[0].token"), "{err}");
        assert!(!err.contains("short"), "{err}");

        let scope = GatewayConfig {
            tokens: vec![token(&["admin", "call:a.>.b"])],
            ..GatewayConfig::default()
        };
        match scope.validate().unwrap_err() {
            ConfigError::Scope { token, index, .. } => {
                assert_eq!((token.as_str(), index), ("ci", 1));
            }
            other => panic!("{other}"),
        }

        let twice = GatewayConfig {
            tokens: vec![
                token(&["admin"]),
                TokenConfig::new("b", "0123456789abcdef-secret", ["ops"]),
            ],
            ..GatewayConfig::default()
        };
        let err = twice.validate().unwrap_err().to_string();
        assert!(err.contains("tokens[1].token"), "{err}");
        assert!(!err.contains("0123456789abcdef-secret"), "{err}");

        let debug = format!("{:?}", token(&["admin"]));
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn it_reads_from_json_with_defaults_and_refuses_unknown_fields() {
        let config: GatewayConfig = serde_json::from_value(serde_json::json!({
            "bind": "127.0.0.1:0",
            "max_batch": 5,
            "tokens": [{"name": "ci", "token": "0123456789abcdef-secret", "scopes": ["call:echo.*"]}]
        }))
        .unwrap();
        assert_eq!(config.max_batch, 5);
        assert_eq!(
            config.max_body_bytes,
            GatewayConfig::default().max_body_bytes
        );
        config.validate().unwrap();
        let unknown = serde_json::from_value::<GatewayConfig>(serde_json::json!({"max_bach": 5}));
        assert!(unknown.is_err());
    }
}
