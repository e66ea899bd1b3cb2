//! The sidecar's identity on the internal endpoint.

use wasmdapr_api::internal::certs::{CertError, LOCAL_CERT_VALIDITY};
use wasmdapr_api::internal::identity::{DEFAULT_TRUST_DOMAIN, IdentityError};
use wasmdapr_api::internal::{CertificateAuthority, SidecarIdentity};
use wasmdapr_runtime::AppId;

use crate::{SidecarConfig, SidecarError};

/// The identity of this sidecar on the internal endpoint: the trust bundle
/// of `--enable-mtls`, whose certificate must be this app's; else a
/// certificate issued at start from the machine-local trust bundle, which
/// every sidecar of the user shares with no configuration. Without a data
/// directory there is no local bundle: the sidecar then neither calls nor
/// accepts other sidecars (with a warning), as without name resolution.
pub(crate) fn identity(config: &SidecarConfig) -> Result<Option<SidecarIdentity>, SidecarError> {
    let mtls = |e: IdentityError| SidecarError::Mtls(e.to_string());
    let app_id: &AppId = &config.app_id;
    if let Some(given) = &config.mtls {
        let identity =
            SidecarIdentity::from_pem(&given.trust_anchors, &given.cert_chain, &given.cert_key)
                .map_err(mtls)?;
        if &identity.id.app_id != app_id {
            return Err(SidecarError::Mtls(format!(
                "the certificate is {}, not of app '{app_id}'",
                identity.id
            )));
        }
        return Ok(Some(identity));
    }
    let Some(dir) = &config.data_dir else {
        tracing::warn!(
            "no home directory: no machine-local trust bundle, other sidecars cannot be called (pass --enable-mtls)"
        );
        return Ok(None);
    };
    let local = CertificateAuthority::local(&dir.join("trust"), DEFAULT_TRUST_DOMAIN)
        .and_then(|ca| ca.identity(&config.namespace, app_id, LOCAL_CERT_VALIDITY));
    match local {
        Ok(identity) => Ok(Some(identity)),
        Err(CertError::Identity(e)) => Err(mtls(e)),
        Err(error) => {
            tracing::warn!(%error, "machine-local trust bundle unavailable: other sidecars cannot be called (pass --enable-mtls)");
            Ok(None)
        }
    }
}
