//! [`ApiConfig`]: the settings both front doors share, and [`ApiToken`],
//! Dapr's `dapr-api-token` check.

use std::fmt;

use crate::server::ServerLimits;

/// Dapr's default `--max-body-size`: 4 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 4 << 20;

/// The name of the header (HTTP) and metadata key (gRPC) carrying the token.
pub const API_TOKEN_HEADER: &str = "dapr-api-token";

/// Settings of the HTTP and gRPC servers. `Debug` redacts the token.
#[derive(Clone)]
pub struct ApiConfig {
    /// When set (and not empty), every request but health checks must carry
    /// this token in `dapr-api-token`; the binary reads it from
    /// `DAPR_API_TOKEN`.
    pub api_token: Option<String>,
    /// The largest request body (HTTP) or message (gRPC) accepted, in bytes.
    pub max_body_size: usize,
    /// Timeouts and the connection bound of the servers.
    pub server: ServerLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            api_token: None,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            server: ServerLimits::default(),
        }
    }
}

impl ApiConfig {
    /// The token to check, if any: an empty token means none, as Dapr
    /// treats an empty `DAPR_API_TOKEN`.
    pub fn token(&self) -> Option<ApiToken> {
        self.api_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(ApiToken::new)
    }
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("api_token", &self.token())
            .field("max_body_size", &self.max_body_size)
            .field("server", &self.server)
            .finish()
    }
}

/// The API token. Its `Debug` never prints the secret, and comparison takes
/// the same time wherever the first differing byte is, so the token cannot
/// be guessed byte by byte from response times.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Whether `given` (the header's raw bytes, if any) is this token.
    pub fn matches(&self, given: Option<&[u8]>) -> bool {
        let Some(given) = given else {
            return false;
        };
        let expected = self.0.as_bytes();
        // The length is not secret (it is also visible on the wire); the
        // content is compared without an early exit.
        if given.len() != expected.len() {
            return false;
        }
        let diff = given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the exact token matches; absence, prefixes and near misses do not.
    #[test]
    fn token_matches_exactly() {
        let t = ApiToken::new("s3cret");
        assert!(t.matches(Some(b"s3cret")));
        assert!(!t.matches(None));
        assert!(!t.matches(Some(b"s3cre")));
        assert!(!t.matches(Some(b"s3cres")));
        assert!(!t.matches(Some(b"")));
        assert_eq!(format!("{t:?}"), "ApiToken(<redacted>)");
        let config = ApiConfig {
            api_token: Some(String::new()),
            ..ApiConfig::default()
        };
        assert!(config.token().is_none());
        let config = ApiConfig {
            api_token: Some("s3cret".into()),
            ..ApiConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
