//! Bearer tokens and scopes: who a request is from and what it may do.
//!
//! A request carries `Authorization: Bearer <token>`. [`Auth::authenticate`] compares
//! it with every configured token in constant time and yields a [`Caller`] with the
//! token's scopes, or an [`AuthFailure`] (counted in
//! `plexus_gateway_auth_failures_total{reason}`; the token itself is never logged).
//! With no tokens configured, auth is off and every caller is [`Caller::open`].
//!
//! Scopes ([`Scope`]) use the bus's NATS-style wildcards (`*` one token, `>` the rest):
//!
//! | scope | allows |
//! | --- | --- |
//! | `admin` | everything |
//! | `ops` | `GET /metrics`, `GET /health`, and the dashboard's reads (`/ui/api/*`, the live tail `/ui/live`) |
//! | `call:<pattern>` | calling a method `service.method` the pattern matches (`call:storage.*`) |
//! | `publish:<pattern>` | `plexus.publish` on a topic the pattern matches |
//! | `subscribe:<pattern>` | `plexus.subscribe` to a pattern that matches only topics this one matches |
//! | `register:<pattern>` | `plexus.register` of a service whose name the pattern matches (`register:echo`, `register:*`) |
//!
//! `/livez` and `/ready` never need a token.

use std::fmt;
use std::sync::Arc;

pub use plexus_core::scope::{Caller, Forbidden, Need, Scope, ScopeError};
use plexus_jsonrpc::{RpcError, codes};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::TokenConfig;

/// Why a request could not be authenticated (HTTP 401, JSON-RPC -32001).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization: Bearer` header.
    #[error("unauthorized: send `Authorization: Bearer <token>`")]
    Missing,
    /// A header that is not `Bearer <token>`.
    #[error("unauthorized: the Authorization header is not `Bearer <token>`")]
    Malformed,
    /// A token the node does not know.
    #[error("unauthorized: unknown token")]
    Unknown,
}

impl AuthFailure {
    /// The `reason` label of `plexus_gateway_auth_failures_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
        }
    }
}

impl From<AuthFailure> for RpcError {
    fn from(e: AuthFailure) -> Self {
        Self::new(codes::UNAUTHORIZED, e.to_string(), "unauthorized")
            .with_data(json!({"reason": e.reason()}))
    }
}

struct Known {
    secret: Box<[u8]>,
    caller: Caller,
}

/// The configured tokens, ready to check requests against.
#[derive(Clone)]
pub struct Auth {
    tokens: Arc<[Known]>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.tokens.iter().map(|k| k.caller.name()).collect();
        f.debug_struct("Auth").field("tokens", &names).finish()
    }
}

impl Auth {
    /// Builds the table from validated token configurations (an unreadable scope is
    /// left out; [`crate::GatewayConfig::validate`] refuses those first).
    pub fn new(tokens: &[TokenConfig]) -> Self {
        let tokens = tokens
            .iter()
            .map(|t| Known {
                secret: t.token.expose().as_bytes().into(),
                caller: Caller::new(
                    t.name.as_str(),
                    t.scopes
                        .iter()
                        .filter_map(|s| s.parse().ok())
                        .collect::<Vec<Scope>>(),
                ),
            })
            .collect();
        Self { tokens }
    }

    /// Whether requests must carry a token.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller behind an `Authorization` header value (`None` when absent).
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Caller, AuthFailure> {
        if !self.enabled() {
            return Ok(Caller::open());
        }
        let header = header.ok_or(AuthFailure::Missing)?;
        let token = header
            .strip_prefix(b"Bearer ")
            .or_else(|| header.strip_prefix(b"bearer "))
            .ok_or(AuthFailure::Malformed)?;
        // Compare with every token, without stopping early, in constant time per token.
        let mut found = None;
        for known in self.tokens.iter() {
            if bool::from(known.secret.ct_eq(token)) {
                found = Some(known);
            }
        }
        found.map(|k| k.caller.clone()).ok_or(AuthFailure::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_matched_whole_and_failures_say_why() {
        let auth = Auth::new(&[
            TokenConfig::new("reader", "reader-token-0123456789", ["ops"]),
            TokenConfig::new("writer", "writer-token-0123456789", ["publish:>"]),
        ]);
        let caller = auth
            .authenticate(Some(b"Bearer writer-token-0123456789"))
            .unwrap();
        assert_eq!(caller.name(), Some("writer"));
        assert!(caller.allows(Need::Publish("x.y")));
        assert!(!caller.allows(Need::Ops));
        assert_eq!(auth.authenticate(None).unwrap_err(), AuthFailure::Missing);
        assert_eq!(
            auth.authenticate(Some(b"Basic abc")).unwrap_err(),
            AuthFailure::Malformed
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer writer-token-012345678"))
                .unwrap_err(),
            AuthFailure::Unknown
        );
        assert_eq!(
            auth.authenticate(Some(b"Bearer writer-token-01234567890"))
                .unwrap_err(),
            AuthFailure::Unknown
        );
        let open = Auth::new(&[]);
        assert!(open.authenticate(None).unwrap().allows(Need::Ops));
        let err = caller.check(Need::Ops).unwrap_err().to_string();
        assert_eq!(err, "forbidden: token `writer` lacks scope `ops`");
    }
}
