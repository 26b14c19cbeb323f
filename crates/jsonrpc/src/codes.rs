//! The JSON-RPC error codes Plexus uses, in one place: every front end (`/rpc`,
//! `/ws`, MCP) and the client read them from here.
//!
//! The specification reserves -32768 to -32000 ([`RESERVED`]); -32700 and -32600 to
//! -32603 are its own, the rest of the range is the server's (Plexus uses -32000 to
//! -32008). A code outside the range is an application's: an external service's
//! own code reaches its caller unchanged.

use std::ops::RangeInclusive;

/// Invalid JSON was received (JSON-RPC 2.0).
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object (JSON-RPC 2.0).
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist (JSON-RPC 2.0).
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters (JSON-RPC 2.0).
pub const INVALID_PARAMS: i64 = -32602;
/// Internal error (JSON-RPC 2.0).
pub const INTERNAL_ERROR: i64 = -32603;
/// The service answered with an error of its own.
pub const SERVICE_FAILED: i64 = -32000;
/// No token, or a token the node does not know.
pub const UNAUTHORIZED: i64 = -32001;
/// The token lacks the scope the request needs.
pub const FORBIDDEN: i64 = -32002;
/// Every instance's circuit breaker is open.
pub const CIRCUIT_OPEN: i64 = -32003;
/// The deadline passed before an answer came.
pub const TIMEOUT: i64 = -32004;
/// The service's rate limit refused the call.
pub const RATE_LIMITED: i64 = -32005;
/// No instance can take the call (none registered, all unhealthy, or down).
pub const UNAVAILABLE: i64 = -32006;
/// The service's bulkhead is full.
pub const OVERLOADED: i64 = -32007;
/// The request is larger than the configured limit.
pub const TOO_LARGE: i64 = -32008;

/// The codes the specification reserves for itself and for servers.
pub const RESERVED: RangeInclusive<i64> = -32768..=-32000;

/// Whether `code` lies in the reserved range (then it has a meaning Plexus knows or
/// maps); any other code is an application's own.
pub fn is_reserved(code: i64) -> bool {
    RESERVED.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plexus_codes_are_reserved_and_application_codes_are_not() {
        for code in [
            PARSE_ERROR,
            INVALID_REQUEST,
            METHOD_NOT_FOUND,
            INVALID_PARAMS,
            INTERNAL_ERROR,
            SERVICE_FAILED,
            UNAUTHORIZED,
            FORBIDDEN,
            CIRCUIT_OPEN,
            TIMEOUT,
            RATE_LIMITED,
            UNAVAILABLE,
            OVERLOADED,
            TOO_LARGE,
        ] {
            assert!(is_reserved(code), "{code}");
        }
        for code in [1001, 0, -1, -31999, -32769, i64::MIN, i64::MAX] {
            assert!(!is_reserved(code), "{code}");
        }
    }
}
