//! Who a sidecar is, as Dapr's Sentry says it: an X.509 certificate whose
//! URI SAN is the SPIFFE id `spiffe://<trust-domain>/ns/<namespace>/<app-id>`,
//! signed by the trust anchors every sidecar of the deployment trusts.
//!
//! [`SidecarIdentity`] holds the trust anchors, this sidecar's certificate
//! chain and key, and builds the two rustls configurations of the internal
//! endpoint: the server one requires a client certificate that chains to
//! the anchors (and is valid now), the client one accepts only the server
//! certificate of the SPIFFE id it meant to call. The app id of a peer is
//! read from its certificate, never from anything it sends.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use wasmdapr_runtime::AppId;

/// The trust domain of Dapr self-hosted mode, used when none is given.
pub const DEFAULT_TRUST_DOMAIN: &str = "public";

/// The namespace of Dapr self-hosted mode, used when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why an identity could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// PEM text without what it should hold.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input (`trust anchors`, `certificate chain`, `key`).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A certificate without a usable SPIFFE id.
    #[error("the certificate has no SPIFFE id of a Dapr sidecar: {0}")]
    Spiffe(String),
    /// rustls refused the configuration (e.g. the key does not match).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// `spiffe://<trust_domain>/ns/<namespace>/<app_id>`, the identity Dapr's
/// Sentry puts in a sidecar's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    /// The trust domain (`public` in self-hosted Dapr).
    pub trust_domain: String,
    /// The namespace (`default` in self-hosted Dapr).
    pub namespace: String,
    /// The app id.
    pub app_id: AppId,
}

impl SpiffeId {
    /// The id of `app_id` in `namespace` of `trust_domain`.
    pub fn new(trust_domain: &str, namespace: &str, app_id: AppId) -> Result<Self, IdentityError> {
        check_segment("trust domain", trust_domain)?;
        check_segment("namespace", namespace)?;
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            app_id,
        })
    }

    /// Parses `spiffe://td/ns/namespace/app-id`.
    pub fn parse(uri: &str) -> Result<Self, IdentityError> {
        let bad =
            || IdentityError::Spiffe(format!("`{uri}` is not spiffe://<td>/ns/<ns>/<app-id>"));
        let rest = uri.strip_prefix("spiffe://").ok_or_else(bad)?;
        let mut parts = rest.split('/');
        let (td, ns_label, ns, app) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        if parts.next().is_some() || ns_label != "ns" {
            return Err(bad());
        }
        let app = AppId::new(app).map_err(|e| IdentityError::Spiffe(format!("`{uri}`: {e}")))?;
        Self::new(td, ns, app)
    }

    /// The SPIFFE id of a DER certificate: its one `spiffe://` URI SAN.
    pub fn of_certificate(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| IdentityError::Spiffe(format!("not an X.509 certificate: {e}")))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::Spiffe(e.to_string()))?
            .ok_or_else(|| IdentityError::Spiffe("no subject alternative name".into()))?;
        let mut uris = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                    Some(*uri)
                }
                _ => None,
            });
        match (uris.next(), uris.next()) {
            (Some(uri), None) => Self::parse(uri),
            (None, _) => Err(IdentityError::Spiffe("no spiffe:// URI SAN".into())),
            (Some(_), Some(_)) => Err(IdentityError::Spiffe(
                "more than one spiffe:// URI SAN".into(),
            )),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/{}",
            self.trust_domain, self.namespace, self.app_id
        )
    }
}

/// A trust domain or namespace: lower-case letters, digits, `.`, `-`, `_`
/// (SPIFFE's trust domain characters), not empty.
fn check_segment(what: &str, value: &str) -> Result<(), IdentityError> {
    let ok = !value.is_empty()
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(IdentityError::Spiffe(format!(
            "{what} `{value}` must be lower-case letters, digits, `.`, `-` or `_`"
        )))
    }
}

/// A sidecar's identity for the internal endpoint: the trust anchors, its
/// certificate chain (leaf first) and its private key.
#[derive(Clone)]
pub struct SidecarIdentity {
    /// The SPIFFE id of the leaf certificate.
    pub id: SpiffeId,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for SidecarIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SidecarIdentity")
            .field("id", &self.id.to_string())
            .finish_non_exhaustive()
    }
}

impl SidecarIdentity {
    /// An identity from PEM text: the trust anchors (one or more CA
    /// certificates), the certificate chain (the sidecar's certificate
    /// first) and its private key (PKCS#8, SEC1 or PKCS#1).
    pub fn from_pem(
        trust_anchors: &[u8],
        cert_chain: &[u8],
        key: &[u8],
    ) -> Result<Self, IdentityError> {
        let pem_error = |what| {
            move |e: rustls::pki_types::pem::Error| IdentityError::Pem {
                what,
                reason: e.to_string(),
            }
        };
        let anchors = CertificateDer::pem_slice_iter(trust_anchors)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("trust anchors"))?;
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(anchors);
        if added == 0 {
            return Err(IdentityError::Pem {
                what: "trust anchors",
                reason: "no usable CA certificate".into(),
            });
        }
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error("certificate chain"))?;
        let leaf = chain.first().ok_or_else(|| IdentityError::Pem {
            what: "certificate chain",
            reason: "no certificate".into(),
        })?;
        let id = SpiffeId::of_certificate(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(pem_error("key"))?;
        let identity = Self {
            id,
            roots: Arc::new(roots),
            chain,
            key: Arc::new(key),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        // Fails now, not at the first call, when the key does not match.
        identity.server_config()?;
        Ok(identity)
    }

    /// An identity from three PEM files (Dapr's `ca.crt`, the sidecar's
    /// certificate chain and key).
    pub fn from_files(
        trust_anchors: &Path,
        cert_chain: &Path,
        key: &Path,
    ) -> Result<Self, IdentityError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| IdentityError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Self::from_pem(&read(trust_anchors)?, &read(cert_chain)?, &read(key)?)
    }

    /// The internal endpoint's server configuration: this sidecar's
    /// certificate, and a client certificate required from every peer,
    /// chaining to the trust anchors and valid now. Which app the peer is
    /// comes from that certificate's SPIFFE id ([`SpiffeId::of_certificate`]).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, IdentityError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .build()
                .map_err(|e| IdentityError::Tls(rustls::Error::General(e.to_string())))?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The configuration for calling the sidecar of `peer`: this sidecar's
    /// certificate as the client certificate, and only a server certificate
    /// that chains to the trust anchors, is valid now and carries exactly
    /// `peer`'s SPIFFE id is accepted (the address name resolution gave is
    /// not trusted to be that app's).
    pub fn client_config(&self, peer: SpiffeId) -> Result<Arc<ClientConfig>, IdentityError> {
        let verifier = Arc::new(PeerVerifier {
            roots: self.roots.clone(),
            expected: peer,
            provider: self.provider.clone(),
        });
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The SPIFFE id of `app` in this sidecar's trust domain and namespace:
    /// whom a call to `app` must reach.
    pub fn peer(&self, app: &AppId) -> SpiffeId {
        SpiffeId {
            app_id: app.clone(),
            ..self.id.clone()
        }
    }

    /// The TLS server name sent to peers. Certificates carry SPIFFE ids, not
    /// host names, so the name is fixed and the verifier ignores it.
    pub(crate) fn server_name() -> ServerName<'static> {
        ServerName::try_from("dapr-internal").expect("a valid DNS name")
    }
}

/// Accepts the server certificate of one SPIFFE id, chained to the trust
/// anchors. rustls' own verifier matches DNS names and IP addresses, which
/// sidecar certificates do not carry, so the chain is checked with rustls'
/// webpki helpers and the name is the SPIFFE id.
#[derive(Debug)]
struct PeerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let other = |message: String| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(IdentityError::Spiffe(message)),
            )))
        };
        let id = SpiffeId::of_certificate(end_entity).map_err(|e| other(e.to_string()))?;
        if id != self.expected {
            return Err(other(format!(
                "the server is {id}, not {} as expected",
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPIFFE ids of Dapr's shape parse and print back; others are refused.
    #[test]
    fn spiffe_ids() {
        let id = SpiffeId::parse("spiffe://public/ns/default/checkout").unwrap();
        assert_eq!(id.app_id.as_str(), "checkout");
        assert_eq!(id.to_string(), "spiffe://public/ns/default/checkout");
        for bad in [
            "spiffe://public/default/checkout",
            "spiffe://public/ns/default/checkout/x",
            "spiffe://Public/ns/default/checkout",
            "spiffe:///ns/default/checkout",
            "https://public/ns/default/checkout",
            "spiffe://public/ns/default/bad.id",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad}");
        }
    }
}
