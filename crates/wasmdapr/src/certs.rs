//! `wasmdapr certs`: a trust bundle for a machine or a cluster, and sidecar
//! certificates from it, as Dapr's Sentry issues them (the logic is in
//! `wasmdapr_api::internal::certs`; this is flag parsing and output).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use wasmdapr_api::internal::CertificateAuthority;
use wasmdapr_api::internal::certs::{
    CA_CERT_FILE, CA_KEY_FILE, CertError, SIDECAR_CERT_FILE, SIDECAR_KEY_FILE,
};
use wasmdapr_api::internal::identity::{DEFAULT_NAMESPACE, DEFAULT_TRUST_DOMAIN};
use wasmdapr_host::limits::parse_duration;
use wasmdapr_runtime::AppId;

/// The `certs` subcommands.
#[derive(Subcommand)]
pub enum CertsCommand {
    /// Create a trust bundle: `DIR/ca.crt` (the trust anchors every sidecar
    /// gets) and `DIR/ca.key` (mode 0600; keep it off the sidecars' machines).
    Init(InitArgs),
    /// Issue a sidecar certificate from a trust bundle: `OUT/sidecar.crt`,
    /// `OUT/sidecar.key` (mode 0600) and a copy of `OUT/ca.crt`, for
    /// `--enable-mtls --trust-anchors-file OUT/ca.crt --cert-chain-file
    /// OUT/sidecar.crt --cert-key-file OUT/sidecar.key`.
    Issue(IssueArgs),
}

/// `certs init`.
#[derive(Args)]
pub struct InitArgs {
    /// The directory to create the bundle in.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The trust domain of every certificate issued from this bundle.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    trust_domain: String,
    /// How long the trust anchors are valid.
    #[arg(long, value_parser = parse_duration, default_value = "3650d")]
    valid_for: Duration,
}

/// `certs issue`.
#[derive(Args)]
pub struct IssueArgs {
    /// The bundle's directory (with `ca.crt` and `ca.key`).
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// The app id the certificate is for.
    #[arg(long)]
    app_id: AppId,
    /// The namespace of the app (Dapr self-hosted: `default`).
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// How long the certificate is valid.
    #[arg(long, value_parser = parse_duration, default_value = "30d")]
    valid_for: Duration,
    /// The directory to write the certificate, its key and `ca.crt` to.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs a `certs` subcommand; says on stderr what was written.
pub fn run(command: CertsCommand) -> Result<u8, CertError> {
    match command {
        CertsCommand::Init(args) => {
            let ca = CertificateAuthority::generate(&args.trust_domain, args.valid_for)?;
            ca.save(&args.out)?;
            eprintln!(
                "trust bundle for trust domain '{}': {} (give it to every sidecar), {} (keep it private)",
                args.trust_domain,
                args.out.join(CA_CERT_FILE).display(),
                args.out.join(CA_KEY_FILE).display()
            );
        }
        CertsCommand::Issue(args) => {
            let ca = CertificateAuthority::load(&args.ca)?;
            let issued = ca.issue(&args.namespace, &args.app_id, args.valid_for)?;
            issued.save(&args.out, ca.cert_pem())?;
            eprintln!(
                "certificate of spiffe://{}/ns/{}/{}: {}, {}, {}",
                ca.trust_domain(),
                args.namespace,
                args.app_id,
                args.out.join(SIDECAR_CERT_FILE).display(),
                args.out.join(SIDECAR_KEY_FILE).display(),
                args.out.join(CA_CERT_FILE).display()
            );
        }
    }
    Ok(0)
}
