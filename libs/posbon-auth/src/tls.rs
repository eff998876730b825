//! What Posbon trusts when it is the client of a TLS server (the CLI and
//! tests reaching an `https://` Posbon, the identity provider's key set):
//! the system's root certificates plus, optionally, a PEM file of a
//! cluster's own certificate authority. Always the ring provider, the same
//! crypto the servers use.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;

/// The rustls client configuration: the system's trusted roots plus the
/// certificates of `extra_ca` (a PEM file). The error names the file and
/// what is wrong with it.
pub fn client_config(extra_ca: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("the CA file {} is not PEM: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "the CA file {} holds no certificate",
                path.display()
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                format!(
                    "the CA file {} holds an unusable certificate: {e}",
                    path.display()
                )
            })?;
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// A reqwest client on [`client_config`]: no proxy from the environment
/// (a police network's proxy settings must not reroute Posbon's own calls),
/// a 10 s connect timeout, redirects not followed (an answer is shown or
/// acted on as it came, and a token never travels to another address).
pub fn http_client(extra_ca: Option<&Path>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(extra_ca)?)
        .connect_timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
