//! Scopes: what a caller may do, and the [`Caller`] a call carries.
//!
//! A bearer token (see the gateway) grants scopes; the gateway puts the token's
//! [`Caller`] on every call it makes ([`crate::CallContext::with_scopes`]), and the
//! node checks `call:` scopes on every call, whichever front end (JSON-RPC,
//! WebSocket, MCP) or service (a script calling on its caller's behalf) makes it.
//! Scopes use the bus's NATS-style wildcards (`*` one token, `>` the rest):
//!
//! | scope | allows |
//! | --- | --- |
//! | `admin` | everything |
//! | `ops` | `GET /metrics` and `GET /health` |
//! | `call:<pattern>` | calling a method `service.method` the pattern matches (`call:storage.*`) |
//! | `publish:<pattern>` | `plexus.publish` on a topic the pattern matches |
//! | `subscribe:<pattern>` | `plexus.subscribe` to a pattern that matches only topics this one matches |
//! | `register:<pattern>` | `plexus.register` of a service whose name the pattern matches (`register:echo`, `register:*`) |

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::TopicPattern;

/// The service of the bus and registry methods (`plexus.publish`, …), which the node
/// serves itself; each of its methods is allowed by its own verb's scope
/// (`publish:`, `subscribe:`, `register:`), not by `call:`.
pub const PLEXUS_SERVICE: &str = "plexus";

/// What calling `method` (`service.method`) needs: `call:<method>`, or nothing of
/// `call:` for the methods of [`PLEXUS_SERVICE`], which check their own scopes.
pub fn call_need(method: &str) -> Option<Need<'_>> {
    match method.split_once('.') {
        Some((PLEXUS_SERVICE, _)) => None,
        _ => Some(Need::Call(method)),
    }
}

/// One permission a token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Admin,
    /// The operations endpoints `/metrics` and `/health`.
    Ops,
    /// Calling methods whose `service.method` name matches.
    Call(TopicPattern),
    /// Publishing on matching topics.
    Publish(TopicPattern),
    /// Subscribing to patterns within this one.
    Subscribe(TopicPattern),
    /// Registering services whose name matches.
    Register(TopicPattern),
}

/// Why a scope could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeError(String);

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "admin" => return Ok(Self::Admin),
            "ops" => return Ok(Self::Ops),
            _ => {}
        }
        let Some((verb, pattern)) = text.split_once(':') else {
            return Err(ScopeError(
                "is not `admin`, `ops` or `<verb>:<pattern>` (verbs: call, publish, subscribe, register)".into(),
            ));
        };
        let pattern = TopicPattern::new(pattern)
            .map_err(|e| ScopeError(format!("has an invalid pattern: {e}")))?;
        match verb {
            "call" => Ok(Self::Call(pattern)),
            "publish" => Ok(Self::Publish(pattern)),
            "subscribe" => Ok(Self::Subscribe(pattern)),
            "register" => Ok(Self::Register(pattern)),
            other => Err(ScopeError(format!(
                "has an unknown verb `{other}` (verbs: call, publish, subscribe, register)"
            ))),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Admin => f.write_str("admin"),
            Self::Ops => f.write_str("ops"),
            Self::Call(p) => write!(f, "call:{p}"),
            Self::Publish(p) => write!(f, "publish:{p}"),
            Self::Subscribe(p) => write!(f, "subscribe:{p}"),
            Self::Register(p) => write!(f, "register:{p}"),
        }
    }
}

/// What a request needs to be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// Call the method `service.method`.
    Call(&'a str),
    /// Publish on the topic.
    Publish(&'a str),
    /// Subscribe to the pattern.
    Subscribe(&'a str),
    /// Register the service.
    Register(&'a str),
    /// Read `/metrics` or `/health`.
    Ops,
}

impl fmt::Display for Need<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Call(m) => write!(f, "call:{m}"),
            Self::Publish(t) => write!(f, "publish:{t}"),
            Self::Subscribe(p) => write!(f, "subscribe:{p}"),
            Self::Register(s) => write!(f, "register:{s}"),
            Self::Ops => f.write_str("ops"),
        }
    }
}

impl Scope {
    /// Whether this scope allows `need`.
    pub fn allows(&self, need: Need<'_>) -> bool {
        match (self, need) {
            (Self::Admin, _) => true,
            (Self::Ops, Need::Ops) => true,
            (Self::Call(p), Need::Call(method)) => p.matches_str(method),
            (Self::Publish(p), Need::Publish(topic)) => p.matches_str(topic),
            (Self::Subscribe(p), Need::Subscribe(pattern)) => covers(p.as_str(), pattern),
            (Self::Register(p), Need::Register(service)) => p.matches_str(service),
            _ => false,
        }
    }
}

/// Whether every topic `inner` matches is also matched by `outer` (both patterns).
fn covers(outer: &str, inner: &str) -> bool {
    let mut o = outer.split('.');
    let mut i = inner.split('.');
    loop {
        match (o.next(), i.next()) {
            (None, None) => return true,
            // `>` takes one or more tokens, whatever they are.
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a != "*" && a != ">" && a == b && b != "*" && b != ">" => {}
            _ => return false,
        }
    }
}

/// The authenticated party behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    name: Option<Arc<str>>,
    scopes: Arc<[Scope]>,
}

impl Caller {
    /// The caller when auth is off: anonymous, allowed everything.
    pub fn open() -> Self {
        Self {
            name: None,
            scopes: Arc::from([Scope::Admin]),
        }
    }

    /// A caller known by a token's `name`, with its scopes.
    pub fn new(name: impl Into<Arc<str>>, scopes: impl Into<Arc<[Scope]>>) -> Self {
        Self {
            name: Some(name.into()),
            scopes: scopes.into(),
        }
    }

    /// The token's name, `None` when auth is off.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Its scopes.
    pub fn scopes(&self) -> &Arc<[Scope]> {
        &self.scopes
    }

    /// Whether any of its scopes allows `need`.
    pub fn allows(&self, need: Need<'_>) -> bool {
        self.scopes.iter().any(|s| s.allows(need))
    }

    /// Whether some call of `method` could be allowed: its `call:` scope, or for a
    /// method of [`PLEXUS_SERVICE`] any scope of its verb (`publish:` for
    /// `plexus.publish`), since those are checked per topic, pattern or service when
    /// called. What a tool list shows a caller.
    pub fn may_call(&self, method: &str) -> bool {
        let Some(need) = call_need(method) else {
            let verb = method.rsplit('.').next().unwrap_or_default();
            return self.scopes.iter().any(|s| match s {
                Scope::Admin => true,
                Scope::Publish(_) => verb == "publish",
                Scope::Subscribe(_) => verb == "subscribe" || verb == "unsubscribe",
                Scope::Register(_) => {
                    matches!(verb, "register" | "deregister" | "heartbeat")
                }
                Scope::Ops | Scope::Call(_) => false,
            });
        };
        self.allows(need)
    }

    /// `Ok` when allowed, else the [`Forbidden`] error naming the scope it lacks.
    pub fn check(&self, need: Need<'_>) -> Result<(), Forbidden> {
        if self.allows(need) {
            Ok(())
        } else {
            Err(Forbidden {
                caller: self.name.as_deref().unwrap_or("anonymous").to_owned(),
                needed: need.to_string(),
            })
        }
    }
}

/// The token lacks the scope a request needs (HTTP 403, JSON-RPC -32002).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("forbidden: token `{caller}` lacks scope `{needed}`")]
pub struct Forbidden {
    /// The token's name.
    pub caller: String,
    /// The scope the request needed.
    pub needed: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn scopes_parse_and_print_back() {
        for s in [
            "admin",
            "ops",
            "call:storage.*",
            "publish:a.>",
            "subscribe:a.b",
            "register:echo",
        ] {
            assert_eq!(scope(s).to_string(), s);
        }
        assert!("call".parse::<Scope>().is_err());
        assert!("fly:a".parse::<Scope>().is_err());
        assert!("call:a.>.b".parse::<Scope>().is_err());
    }

    #[test]
    fn call_publish_and_register_match_with_wildcards() {
        assert!(scope("call:storage.*").allows(Need::Call("storage.get")));
        assert!(!scope("call:storage.*").allows(Need::Call("cache.get")));
        assert!(scope("call:>").allows(Need::Call("cache.get")));
        assert!(scope("publish:assistant.>").allows(Need::Publish("assistant.a.b")));
        assert!(!scope("publish:assistant.>").allows(Need::Publish("assistant")));
        assert!(scope("register:echo").allows(Need::Register("echo")));
        assert!(!scope("register:echo").allows(Need::Register("shout")));
        assert!(scope("register:*").allows(Need::Register("shout")));
        assert!(!scope("call:>").allows(Need::Publish("a")));
        assert!(scope("admin").allows(Need::Ops));
        assert!(!scope("call:>").allows(Need::Ops));
    }

    #[test]
    fn subscribe_allows_only_narrower_patterns() {
        let s = |outer: &str, inner: &str| {
            scope(&format!("subscribe:{outer}")).allows(Need::Subscribe(inner))
        };
        assert!(s("orders.>", "orders.created"));
        assert!(s("orders.>", "orders.*"));
        assert!(s("orders.>", "orders.>"));
        assert!(s("orders.>", "orders.*.x"));
        assert!(s("orders.*", "orders.created"));
        assert!(s("orders.*", "orders.*"));
        assert!(!s("orders.*", "orders.>"));
        assert!(!s("orders.*", "orders.a.b"));
        assert!(!s("orders.created", "orders.*"));
        assert!(!s("orders.>", "orders"));
        assert!(!s("orders.>", ">"));
        assert!(s(">", ">"));
        assert!(s("a.b", "a.b"));
    }
}
