//! Trust bundles and sidecar certificates, as Dapr's Sentry makes them
//! (rcgen, ECDSA P-256): a [`CertificateAuthority`] (`ca.crt` + `ca.key`)
//! issues each sidecar an X.509 certificate whose URI SAN is its SPIFFE id,
//! usable for TLS server and client authentication.
//!
//! The trust domain lives in the CA certificate itself, as a SPIFFE id
//! without a path (`spiffe://public`, what SPIFFE allows signing
//! certificates to carry), so issuing needs only the CA directory.
//!
//! [`CertificateAuthority::local`] is the machine-local bundle every
//! sidecar of one user shares when `--enable-mtls` is not given: created on
//! first use in a `0700` directory with a `0600` key, under the same data
//! directory as the SQLite name resolution file. Anyone who can read that
//! directory is that user, who can already read every app's files and
//! environment; the bundle keeps out every other user and every process that
//! merely reaches the port.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use wasmdapr_runtime::AppId;

use super::identity::{IdentityError, SidecarIdentity, SpiffeId};

/// The trust anchors' file name, as Dapr names it.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA key's file name.
pub const CA_KEY_FILE: &str = "ca.key";
/// The sidecar certificate's file name written by [`IssuedCertificate::save`].
pub const SIDECAR_CERT_FILE: &str = "sidecar.crt";
/// The sidecar key's file name written by [`IssuedCertificate::save`].
pub const SIDECAR_KEY_FILE: &str = "sidecar.key";

/// How long a machine-local CA is valid.
pub const LOCAL_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a certificate a sidecar issues itself from the machine-local
/// bundle is valid. Long, because the sidecar does not renew it while it
/// runs, and a shorter life adds nothing when the issuing key sits on the
/// same disk, readable by the same user.
pub const LOCAL_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// Clock skew between machines that a fresh certificate tolerates.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why a bundle or certificate could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// rcgen failed (a malformed CA file, a key of the wrong type).
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A CA certificate or SPIFFE id that is not usable.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A CA: its certificate (the trust anchors) and key, in PEM.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    trust_domain: String,
}

/// A sidecar certificate and its key, in PEM.
pub struct IssuedCertificate {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl CertificateAuthority {
    /// A new self-signed CA for `trust_domain`, valid for `valid_for`.
    pub fn generate(trust_domain: &str, valid_for: Duration) -> Result<Self, CertError> {
        // Checks the trust domain's characters.
        SpiffeId::new(trust_domain, "default", AppId::new("x").expect("valid"))?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "wasmdapr");
        name.push(
            DnType::CommonName,
            format!("wasmdapr trust anchor {trust_domain}"),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.subject_alt_names =
            vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
        params.serial_number = Some(serial());
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + valid_for).into();
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            trust_domain: trust_domain.to_owned(),
        })
    }

    /// Reads `dir/ca.crt` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<Self, CertError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_error(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_error(&key_path))?;
        let trust_domain = trust_domain_of(&cert_pem)?;
        Ok(Self {
            cert_pem,
            key_pem,
            trust_domain,
        })
    }

    /// Writes `dir/ca.crt` and `dir/ca.key` (mode `0600`), creating `dir`
    /// (mode `0700`); an existing key is never overwritten.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        create_private_dir(dir)?;
        write_file(&dir.join(CA_KEY_FILE), &self.key_pem, true)?;
        write_file(&dir.join(CA_CERT_FILE), &self.cert_pem, false)
    }

    /// The machine-local bundle in `dir`: read when it exists, else created
    /// there. Several sidecars starting at once agree on one bundle: each
    /// writes a candidate into a directory of its own and renames it into
    /// place, which only the first succeeds in; the others read the winner's.
    pub fn local(dir: &Path, trust_domain: &str) -> Result<Self, CertError> {
        if dir.join(CA_CERT_FILE).exists() {
            return Self::load(dir);
        }
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
        let candidate = parent.join(format!(
            ".{}.{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("trust"),
            uuid::Uuid::new_v4().simple()
        ));
        let ca = Self::generate(trust_domain, LOCAL_CA_VALIDITY)?;
        ca.save(&candidate)?;
        match std::fs::rename(&candidate, dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "created the machine-local trust bundle");
                Ok(ca)
            }
            Err(_) if dir.join(CA_CERT_FILE).exists() => {
                let _ = std::fs::remove_dir_all(&candidate);
                Self::load(dir)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&candidate);
                Err(io_error(dir)(e))
            }
        }
    }

    /// The CA certificate: the trust anchors of the sidecars it issues for.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The trust domain of the certificates this CA issues.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// A sidecar certificate for `app_id` in `namespace`, valid from a few
    /// minutes ago (clock skew) for `valid_for`.
    pub fn issue(
        &self,
        namespace: &str,
        app_id: &AppId,
        valid_for: Duration,
    ) -> Result<IssuedCertificate, CertError> {
        let now = SystemTime::now();
        self.issue_between(namespace, app_id, now - BACKDATE, now + valid_for)
    }

    /// A sidecar certificate for `app_id` in `namespace`, valid between the
    /// two times (tests issue expired ones with it).
    pub fn issue_between(
        &self,
        namespace: &str,
        app_id: &AppId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<IssuedCertificate, CertError> {
        let id = SpiffeId::new(&self.trust_domain, namespace, app_id.clone())?;
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, app_id.as_str());
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(serial());
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues `app_id` a certificate and returns it as a ready identity
    /// trusting this CA.
    pub fn identity(
        &self,
        namespace: &str,
        app_id: &AppId,
        valid_for: Duration,
    ) -> Result<SidecarIdentity, CertError> {
        let issued = self.issue(namespace, app_id, valid_for)?;
        Ok(issued.identity(&self.cert_pem)?)
    }
}

impl IssuedCertificate {
    /// This certificate as an identity trusting `trust_anchors` (PEM).
    pub fn identity(&self, trust_anchors: &str) -> Result<SidecarIdentity, IdentityError> {
        SidecarIdentity::from_pem(
            trust_anchors.as_bytes(),
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
        )
    }

    /// Writes `dir/sidecar.crt`, `dir/sidecar.key` (mode `0600`) and the
    /// trust anchors as `dir/ca.crt`, creating `dir` (mode `0700`): the
    /// three files of `--trust-anchors-file`, `--cert-chain-file` and
    /// `--cert-key-file`. Existing files are replaced (a renewal).
    pub fn save(&self, dir: &Path, trust_anchors: &str) -> Result<(), CertError> {
        create_private_dir(dir)?;
        replace_file(&dir.join(SIDECAR_KEY_FILE), &self.key_pem)?;
        replace_file(&dir.join(SIDECAR_CERT_FILE), &self.cert_pem)?;
        replace_file(&dir.join(CA_CERT_FILE), trust_anchors)
    }
}

/// The trust domain a CA certificate carries (`spiffe://<td>`), or Dapr's
/// default for a CA made elsewhere (Sentry's carry none).
fn trust_domain_of(cert_pem: &str) -> Result<String, CertError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| IdentityError::Pem {
            what: "CA certificate",
            reason: e.to_string(),
        })?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| IdentityError::Pem {
        what: "CA certificate",
        reason: e.to_string(),
    })?;
    let domain = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => uri
                    .strip_prefix("spiffe://")
                    .filter(|td| !td.is_empty() && !td.contains('/'))
                    .map(str::to_owned),
                _ => None,
            })
        });
    Ok(domain.unwrap_or_else(|| super::identity::DEFAULT_TRUST_DOMAIN.to_owned()))
}

/// A random positive 127-bit serial number (RFC 5280 allows up to 20 octets).
fn serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Creates `dir` and its parents; `dir` itself gets mode `0700`.
fn create_private_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// Writes a new file: `private` ones with mode `0600` from the start (no
/// moment where another user could open them). Refuses to overwrite.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CertError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(contents.as_bytes())
        .map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}

/// Replaces `path` with `contents` through a private temporary file.
fn replace_file(path: &Path, contents: &str) -> Result<(), CertError> {
    let temp = path.with_extension(format!("tmp.{}", uuid::Uuid::new_v4().simple()));
    write_file(&temp, contents, true)?;
    std::fs::rename(&temp, path).map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA issues certificates carrying the SPIFFE id of the app; a saved
    /// CA reads back with its trust domain, its key private.
    #[test]
    fn issue_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::generate("example.org", Duration::from_secs(3600)).unwrap();
        ca.save(&dir.path().join("ca")).unwrap();
        let ca = CertificateAuthority::load(&dir.path().join("ca")).unwrap();
        assert_eq!(ca.trust_domain(), "example.org");
        let app = AppId::new("checkout").unwrap();
        let identity = ca.identity("prod", &app, Duration::from_secs(60)).unwrap();
        assert_eq!(
            identity.id.to_string(),
            "spiffe://example.org/ns/prod/checkout"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("ca").join(CA_KEY_FILE)), 0o600);
            assert_eq!(mode(&dir.path().join("ca")), 0o700);
        }
        assert!(
            ca.save(&dir.path().join("ca")).is_err(),
            "a key was overwritten"
        );
    }

    /// Concurrent first uses of the machine-local bundle agree on one CA.
    #[test]
    fn local_bundle_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("wasmdapr").join("trust");
        let pems: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        CertificateAuthority::local(&trust, "public")
                            .unwrap()
                            .cert_pem()
                            .to_owned()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = CertificateAuthority::load(&trust).unwrap();
        assert!(pems.iter().all(|p| p == on_disk.cert_pem()));
        let leftovers = std::fs::read_dir(trust.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "temporary candidates were left behind");
    }
}
