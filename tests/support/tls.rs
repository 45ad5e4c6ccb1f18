//! Test certificates: a throwaway CA made with rcgen, and a server
//! certificate for `localhost` / `127.0.0.1` signed by it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// Installs ring as the process's rustls provider (reqwest needs one).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Files of a test PKI.
pub struct TestPki {
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Server chain file.
    pub cert: PathBuf,
    /// Server key file.
    pub key: PathBuf,
}

impl TestPki {
    /// A client configuration that trusts this PKI's CA and offers HTTP/1.1
    /// by ALPN.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        install_provider();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Writes a CA-signed `localhost` certificate and key into `dir`.
pub fn make_pki(dir: &Path) -> TestPki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, leaf.pem()).expect("write cert");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    TestPki {
        ca_pem: ca_cert.pem(),
        cert,
        key,
    }
}

/// A throwaway CA that signs server certificates on demand. (The soak
/// bench shares this file and uses only [`make_pki`].)
#[allow(dead_code)]
pub struct TestCa {
    key: KeyPair,
    params: CertificateParams,
    dir: PathBuf,
    /// The CA certificate's file (PEM).
    pub file: PathBuf,
}

/// A CA, its certificate written to `dir/ca.pem`.
#[allow(dead_code)]
pub fn make_ca(dir: &Path) -> TestCa {
    let key = KeyPair::generate().expect("ca key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("ca cert");
    let file = dir.join("ca.pem");
    std::fs::write(&file, cert.pem()).expect("write ca");
    TestCa {
        key,
        params,
        dir: dir.to_path_buf(),
        file,
    }
}

#[allow(dead_code)]
impl TestCa {
    /// A certificate for `names` signed by this CA (expired in 2021 if
    /// `expired`), written as `dir/NAME.pem` and `dir/NAME.key`.
    pub fn leaf(&self, file: &str, names: &[&str], expired: bool) -> (PathBuf, PathBuf) {
        let issuer = Issuer::from_params(&self.params, &self.key);
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &issuer).expect("leaf cert");
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write leaf");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    /// A rustls server config for a leaf of this CA (ALPN h2, http/1.1).
    pub fn server_config(
        &self,
        file: &str,
        names: &[&str],
        expired: bool,
    ) -> Arc<rustls::ServerConfig> {
        let (c, k) = self.leaf(file, names, expired);
        let chain = lifeboat::tls::read_chain(&c).expect("chain");
        let key = lifeboat::tls::read_key(&k).expect("key");
        lifeboat::tls::server_config(chain, key).expect("server config")
    }
}
