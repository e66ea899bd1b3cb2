//! [`AllowedHosts`]: the destinations a guest may send HTTP requests to.
//!
//! Each `--allow-host` value is parsed once, when the command line is read,
//! into a typed [`AllowedHost`]; a request is then checked against the
//! parsed entries by **scheme, host and port** together. Nothing is compared
//! as a string at call time, so `http://example.com` cannot be fooled by a
//! request to `http://example.com.evil.net`.
//!
//! # Syntax
//!
//! `SCHEME://HOST[:PORT]`, optionally with a trailing `/` (no other path,
//! query, fragment or user info):
//!
//! - `SCHEME` is `http`, `https`, or `*` (either).
//! - `HOST` is a DNS name, an IPv4 address, an IPv6 address in brackets
//!   (`[::1]`), `*` (any host), or `*.example.com` (any subdomain of
//!   `example.com` at any depth, but not `example.com` itself). Host names
//!   are compared case-insensitively; a trailing `.` is ignored.
//! - `PORT` is a number or `*` (any port). Without a port the scheme's
//!   default applies: 80 for `http`, 443 for `https`; with scheme `*`, the
//!   default port of whichever scheme the request uses (so `*://example.com`
//!   allows `http://example.com:80` and `https://example.com:443` only).
//!
//! Examples: `https://api.example.com`, `http://127.0.0.1:3500`,
//! `http://127.0.0.1:*`, `https://*.example.com`, `*://localhost:8080`.
//!
//! # Why ports matter
//!
//! The original prototype compared host names only, so allowing
//! `http://127.0.0.1:3500` allowed every port of that host, including
//! databases and admin consoles on the loopback interface. Here an entry
//! allows exactly its port (or the scheme's default port); only an explicit
//! `:*` widens it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A request refused because its destination was not granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound request to {scheme}://{host}:{port} is not allowed (grant it with --allow-host)")]
pub struct OutboundDenied {
    /// The request's scheme.
    pub scheme: String,
    /// The request's host, normalized.
    pub host: String,
    /// The request's port (the scheme's default when the URL had none).
    pub port: u16,
}

/// An `--allow-host` value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{value}` is not an allowed host: {reason} (expected SCHEME://HOST[:PORT], e.g. `https://api.example.com` or `http://127.0.0.1:*`)"
)]
pub struct AllowedHostError {
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The scheme part of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemePattern {
    /// `http` only.
    Http,
    /// `https` only.
    Https,
    /// `*`: either.
    Any,
}

/// The host part of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: any host.
    Any,
    /// `*.SUFFIX`: any subdomain of `SUFFIX` (kept without the leading `*.`).
    Subdomains(String),
    /// One DNS name, lower case.
    Name(String),
    /// One IP address.
    Ip(IpAddr),
}

/// The port part of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    /// `*`: any port.
    Any,
    /// Exactly this port.
    Exact(u16),
    /// No port given with scheme `*`: the request scheme's default port.
    SchemeDefault,
}

/// One parsed `--allow-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// Which schemes it allows.
    pub scheme: SchemePattern,
    /// Which hosts it allows.
    pub host: HostPattern,
    /// Which ports it allows.
    pub port: PortPattern,
    original: String,
}

/// The default port of `scheme`, if it is one we know.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The canonical form of a request host: lower case, without a trailing
/// `.`, IPv6 literals without brackets and in their shortest form.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim_end_matches('.');
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

impl AllowedHost {
    /// Whether a request to `scheme://host:port` matches this entry.
    /// `host` must be normalized ([`normalize_host`]).
    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let scheme_ok = match self.scheme {
            SchemePattern::Http => scheme == "http",
            SchemePattern::Https => scheme == "https",
            SchemePattern::Any => scheme == "http" || scheme == "https",
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::SchemeDefault => default_port(scheme) == Some(port),
        };
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Name(name) => name == host,
            HostPattern::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        };
        scheme_ok && port_ok && host_ok
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for AllowedHost {
    type Err = AllowedHostError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| AllowedHostError {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = value
            .split_once("://")
            .ok_or_else(|| error("it has no `SCHEME://`"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => SchemePattern::Http,
            "https" => SchemePattern::Https,
            "*" => SchemePattern::Any,
            _ => return Err(error("the scheme must be `http`, `https` or `*`")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(error(
                "only a scheme, a host and a port are allowed (no path, query or user info)",
            ));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (ip, after) = bracketed
                .split_once(']')
                .ok_or_else(|| error("an IPv6 address lacks its closing `]`"))?;
            let ip: std::net::Ipv6Addr = ip
                .parse()
                .map_err(|_| error("the address in brackets is not IPv6"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| error("expected `:PORT` after `]`"))?,
                ),
            };
            (HostPattern::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            if host.contains(':') {
                return Err(error("write an IPv6 address in brackets, e.g. `[::1]`"));
            }
            (parse_host(host).map_err(error)?, port)
        };
        let port = match (port, scheme) {
            (Some("*"), _) => PortPattern::Any,
            (Some(p), _) => match p.parse::<u16>() {
                Ok(p) if p != 0 => PortPattern::Exact(p),
                _ => return Err(error("the port must be 1-65535 or `*`")),
            },
            (None, SchemePattern::Http) => PortPattern::Exact(80),
            (None, SchemePattern::Https) => PortPattern::Exact(443),
            (None, SchemePattern::Any) => PortPattern::SchemeDefault,
        };
        Ok(Self {
            scheme,
            host,
            port,
            original: value.to_owned(),
        })
    }
}

fn parse_host(host: &str) -> Result<HostPattern, &'static str> {
    if host.is_empty() {
        return Err("the host is empty");
    }
    // A trailing `.` (a fully qualified name) is dropped, but not from a
    // lone `*.`, which must not widen into `*`.
    let host = match host.strip_suffix('.') {
        Some(trimmed) if !trimmed.is_empty() && trimmed != "*" => trimmed,
        _ => host,
    };
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Ip(ip));
    }
    let (pattern, name): (fn(String) -> HostPattern, &str) = match host.strip_prefix("*.") {
        Some(suffix) => (HostPattern::Subdomains, suffix),
        None => (HostPattern::Name, host),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(
            "the host must be a DNS name, an IP address, `*` or `*.DOMAIN` (a `*` may only \
             stand alone or begin the host)",
        );
    }
    Ok(pattern(name.to_ascii_lowercase()))
}

/// The destinations a guest may reach: a list of [`AllowedHost`] entries.
/// Empty (the default) allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

impl AllowedHosts {
    /// Parses every `--allow-host` value; the first invalid one is the error.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, AllowedHostError> {
        let entries = values
            .iter()
            .map(|v| v.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// The entries, in the order given.
    pub fn entries(&self) -> &[AllowedHost] {
        &self.entries
    }

    /// Adds an entry.
    pub fn push(&mut self, entry: AllowedHost) {
        self.entries.push(entry);
    }

    /// Whether a request to `scheme://host:port` is allowed. `host` may be
    /// in any case, and an IPv6 literal with or without brackets.
    pub fn check(&self, scheme: &str, host: &str, port: u16) -> Result<(), OutboundDenied> {
        let scheme = scheme.to_ascii_lowercase();
        let host = normalize_host(host);
        if self
            .entries
            .iter()
            .any(|entry| entry.matches(&scheme, &host, port))
        {
            Ok(())
        } else {
            Err(OutboundDenied { scheme, host, port })
        }
    }
}

impl FromIterator<AllowedHost> for AllowedHosts {
    fn from_iter<I: IntoIterator<Item = AllowedHost>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(values: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(values).unwrap()
    }

    /// An exact entry allows its scheme, host and port, and nothing else.
    #[test]
    fn exact_entry_matches_scheme_host_and_port() {
        let allowed = hosts(&["http://127.0.0.1:3500"]);
        assert!(allowed.check("http", "127.0.0.1", 3500).is_ok());
        // The prototype's bug: another port of the same host.
        assert!(allowed.check("http", "127.0.0.1", 6379).is_err());
        assert!(allowed.check("https", "127.0.0.1", 3500).is_err());
        assert!(allowed.check("http", "127.0.0.2", 3500).is_err());
        assert!(allowed.check("http", "localhost", 3500).is_err());
    }

    /// Without a port, the scheme's default port applies.
    #[test]
    fn default_ports_come_from_the_scheme() {
        let allowed = hosts(&["http://example.com", "https://secure.example.com/"]);
        assert!(allowed.check("http", "example.com", 80).is_ok());
        assert!(allowed.check("http", "example.com", 8080).is_err());
        assert!(allowed.check("https", "example.com", 443).is_err());
        assert!(allowed.check("https", "secure.example.com", 443).is_ok());
        assert!(allowed.check("https", "secure.example.com", 80).is_err());
        let either = hosts(&["*://example.com"]);
        assert!(either.check("http", "example.com", 80).is_ok());
        assert!(either.check("https", "example.com", 443).is_ok());
        assert!(either.check("https", "example.com", 80).is_err());
        assert!(either.check("ftp", "example.com", 21).is_err());
    }

    /// `*` as port allows every port of that scheme and host only.
    #[test]
    fn wildcard_port() {
        let allowed = hosts(&["http://127.0.0.1:*"]);
        assert!(allowed.check("http", "127.0.0.1", 1).is_ok());
        assert!(allowed.check("http", "127.0.0.1", 65535).is_ok());
        assert!(allowed.check("https", "127.0.0.1", 443).is_err());
        assert!(allowed.check("http", "127.0.0.3", 80).is_err());
    }

    /// `*` as host allows any host on that scheme and port.
    #[test]
    fn wildcard_host() {
        let allowed = hosts(&["https://*"]);
        assert!(allowed.check("https", "anything.example", 443).is_ok());
        assert!(allowed.check("https", "10.0.0.1", 443).is_ok());
        assert!(allowed.check("https", "anything.example", 8443).is_err());
        assert!(allowed.check("http", "anything.example", 443).is_err());
    }

    /// `*.domain` allows subdomains at any depth but not the domain itself
    /// nor look-alikes.
    #[test]
    fn wildcard_subdomains() {
        let allowed = hosts(&["https://*.example.com"]);
        assert!(allowed.check("https", "api.example.com", 443).is_ok());
        assert!(allowed.check("https", "a.b.example.com", 443).is_ok());
        assert!(allowed.check("https", "example.com", 443).is_err());
        assert!(allowed.check("https", "evilexample.com", 443).is_err());
        assert!(allowed.check("https", "example.com.evil.net", 443).is_err());
    }

    /// `*` as scheme allows http and https.
    #[test]
    fn wildcard_scheme() {
        let allowed = hosts(&["*://localhost:8080"]);
        assert!(allowed.check("http", "localhost", 8080).is_ok());
        assert!(allowed.check("https", "localhost", 8080).is_ok());
        assert!(allowed.check("http", "localhost", 8081).is_err());
    }

    /// Host names match whatever their case; a trailing dot is ignored.
    #[test]
    fn host_names_are_case_insensitive() {
        let allowed = hosts(&["https://API.Example.COM"]);
        assert!(allowed.check("https", "api.example.com", 443).is_ok());
        assert!(allowed.check("HTTPS", "Api.Example.Com.", 443).is_ok());
    }

    /// IPv6 literals are written in brackets and compared as addresses.
    #[test]
    fn ipv6_literals() {
        let allowed = hosts(&["http://[::1]:8080"]);
        assert!(allowed.check("http", "[::1]", 8080).is_ok());
        assert!(allowed.check("http", "::1", 8080).is_ok());
        assert!(allowed.check("http", "[0:0:0:0:0:0:0:1]", 8080).is_ok());
        assert!(allowed.check("http", "[::1]", 8081).is_err());
        assert!(allowed.check("http", "[::2]", 8080).is_err());
        let default = hosts(&["https://[2001:db8::1]"]);
        assert!(default.check("https", "[2001:DB8::1]", 443).is_ok());
    }

    /// Nothing is allowed without an entry.
    #[test]
    fn empty_allows_nothing() {
        let none = AllowedHosts::default();
        let denied = none.check("http", "LocalHost", 80).unwrap_err();
        assert_eq!(denied.host, "localhost");
        assert!(denied.to_string().contains("http://localhost:80"));
    }

    /// Invalid entries are refused with an error naming the value.
    #[test]
    fn invalid_entries_are_refused() {
        for bad in [
            "example.com",
            "ftp://example.com",
            "http://",
            "http://example.com/path",
            "http://user@example.com",
            "http://example.com:0",
            "http://example.com:99999",
            "http://example.com:abc",
            "http://ex*ample.com",
            "http://api.*.com",
            "http://*.",
            "http://::1",
            "http://[::1",
            "http://[nothex]:80",
            "http://[::1]80",
        ] {
            let error = bad.parse::<AllowedHost>().unwrap_err();
            assert!(
                error.to_string().contains(&format!("`{bad}`")),
                "{bad}: {error}"
            );
        }
        let error = AllowedHosts::parse(&["http://ok", "nope"]).unwrap_err();
        assert_eq!(error.value, "nope");
    }
}
