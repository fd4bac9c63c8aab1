//! TLS on the listeners, through rustls: a certificate chain and key from
//! PEM files, HTTP/2 or HTTP/1.1 by ALPN, and optionally client
//! certificates checked against a CA (mTLS).
//!
//! `[tls]` in `intake.toml`, also under eKuiper's `[httpServerTls]` with its
//! `certfile` and `keyfile` names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

/// TLS settings of every listener (`[tls]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate, then its chain.
    #[serde(alias = "certfile")]
    pub cert_file: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(alias = "keyfile")]
    pub key_file: PathBuf,
    /// PEM file of CA certificates; when set, a client must present a
    /// certificate signed by one of them (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// Why TLS cannot be set up; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or holds no usable PEM item.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which setting: `tls.cert_file`, ...
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the combination (key not matching the certificate,
    /// unusable CA).
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl TlsConfig {
    /// An acceptor for these settings, offering `h2` and `http/1.1`.
    ///
    /// # Errors
    /// [`TlsError`] naming the unreadable or invalid file.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let chain = certificates("tls.cert_file", &self.cert_file)?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file).map_err(|e| TlsError::File {
            what: "tls.key_file",
            path: self.key_file.clone(),
            reason: pem_reason(&e, "no private key"),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in certificates("tls.client_ca_file", path)? {
                    roots.add(ca).map_err(|e| TlsError::File {
                        what: "tls.client_ca_file",
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| TlsError::Setup(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Setup(format!("{}: {e}", self.key_file.display())))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Every certificate in a PEM file; at least one.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_reason(&e, "no certificate")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(&e, "no certificate")))?;
    if chain.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(chain)
}

/// A PEM error in words.
fn pem_reason(e: &rustls::pki_types::pem::Error, missing: &str) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!("{missing} found in the file"),
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not valid PEM: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ekuiper_names_are_accepted() {
        let config: TlsConfig =
            toml::from_str("certfile = \"/a/cert.pem\"\nkeyfile = \"/a/key.pem\"\n").unwrap();
        assert_eq!(config.cert_file, PathBuf::from("/a/cert.pem"));
        assert_eq!(config.key_file, PathBuf::from("/a/key.pem"));
        assert_eq!(config.client_ca_file, None);
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let config = TlsConfig {
            cert_file: missing.clone(),
            key_file: empty.clone(),
            client_ca_file: None,
        };
        let e = config.acceptor().err().unwrap().to_string();
        assert!(
            e.starts_with("tls.cert_file") && e.contains("missing.pem"),
            "{e}"
        );
        let config = TlsConfig {
            cert_file: empty.clone(),
            ..config
        };
        let e = config.acceptor().err().unwrap().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
