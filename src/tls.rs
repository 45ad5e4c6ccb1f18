//! TLS termination with rustls and modern defaults only: TLS 1.2 and 1.3,
//! ring's AEAD cipher suites, ALPN `h2` then `http/1.1`, stateless session
//! tickets for resumption. The provider is explicit, so nothing depends on a
//! process-wide default.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::ring;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Reads a PEM certificate chain, leaf first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let read_err = |e: rustls_pki_types::pem::Error| {
        format!("cannot read certificate file {}: {e}", path.display())
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(chain)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read private key file {}: {e}", path.display()))
}

/// A server config for one certificate, ALPN h2 + http/1.1, with resumption.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// A client config that trusts nothing: the TLS side of a connector that
/// is only ever given `http://` URLs.
pub fn unused_client_config() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(rustls::RootCertStore::empty()))
        // ring supports the safe defaults; should it not, the crate's
        // provider (ring, the only one built in) serves the same purpose.
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder().with_root_certificates(rustls::RootCertStore::empty())
        })
        .with_no_client_auth()
}

/// A client config for TLS to the origin or a webhook: the roots in `ca_file` (PEM),
/// or the platform's trust store; a client certificate when `identity`
/// (chain, key) is given. Verification is always on: there is no switch
/// to turn it off.
pub fn client_config(
    ca_file: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_chain(path)? {
                roots.add(cert).map_err(|e| {
                    format!("{} is not a usable CA certificate: {e}", path.display())
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            // Certificates the platform lists but rustls cannot parse are
            // skipped, as browsers do; none at all is an error.
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "the platform's trust store holds no CA certificate: give `ca_file`".into(),
                );
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(read_chain(chain)?, read_key(key)?)
            .map_err(|e| format!("client certificate {}: {e}", chain.display()))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
