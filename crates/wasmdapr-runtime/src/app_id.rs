//! [`AppId`]: the name an app is known by.

use std::fmt;
use std::str::FromStr;

/// A validated Dapr app id.
///
/// Dapr refuses ids containing `.` (they would be ambiguous in service
/// invocation's name resolution), and ids are embedded in state keys as
/// `<app-id>||<key>`, so `||` is refused too; whitespace and control
/// characters would not survive URLs and headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(String);

/// Why a string is not an app id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not a valid app id: {reason}")]
pub struct InvalidAppId {
    /// The rejected id.
    pub id: String,
    /// The rule it breaks.
    pub reason: &'static str,
}

impl AppId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidAppId> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.contains('.') {
            Some("it contains `.`")
        } else if id.contains("||") {
            Some("it contains `||`, the state key separator")
        } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("it contains whitespace or control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidAppId { id, reason }),
            None => Ok(Self(id)),
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AppId {
    type Err = InvalidAppId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AppId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ordinary ids pass; the ones Dapr or our key format cannot carry fail with the rule named.
    #[test]
    fn validates_ids() {
        for ok in ["checkout", "order-processor", "cli_hello", "a1"] {
            assert_eq!(AppId::new(ok).unwrap().as_str(), ok);
        }
        for (bad, rule) in [
            ("", "empty"),
            ("my.app", "`.`"),
            ("a||b", "`||`"),
            ("a b", "whitespace"),
        ] {
            let err = AppId::new(bad).unwrap_err();
            assert!(err.to_string().contains(rule), "{err}");
        }
    }
}
