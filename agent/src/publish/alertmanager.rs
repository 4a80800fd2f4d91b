//! A client of Alertmanager's `POST /api/v2/alerts`, over `http://` or
//! `https://` (the system's roots, or only the CAs of a PEM file for a
//! private CA), each call bounded in time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Longest one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why Alertmanager could not be set up or called.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    /// The URL is not `http://` or `https://` with a host.
    #[error("Alertmanager URL {0}: not http:// or https:// with a host")]
    Url(String),
    /// The CA file could not be read or holds no certificate.
    #[error("Alertmanager CA file {path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up.
    #[error("TLS for Alertmanager: {0}")]
    Tls(#[from] rustls::Error),
    /// It answered with an error status.
    #[error("Alertmanager refused the alerts: {0}")]
    Refused(hyper::StatusCode),
    /// The connection or request failed (TLS included).
    #[error("Alertmanager unreachable: {0}")]
    Unreachable(String),
    /// No answer within the call's bound.
    #[error("Alertmanager did not answer within {0:?}")]
    Timeout(Duration),
}

/// Alertmanager at one base URL.
#[derive(Clone)]
pub struct Alertmanager {
    alerts_url: String,
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager")
            .field("alerts_url", &self.alerts_url)
            .finish()
    }
}

impl Alertmanager {
    /// A client of Alertmanager at `base` (`https://am:9093`); with
    /// `ca_file`, an `https` server is trusted only when one of the file's
    /// certificates signed its own.
    pub fn new(
        base: &hyper::Uri,
        ca_file: Option<&Path>,
    ) -> Result<Alertmanager, AlertmanagerError> {
        if !matches!(base.scheme_str(), Some("http" | "https")) || base.host().is_none() {
            return Err(AlertmanagerError::Url(base.to_string()));
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let ca = |reason: String| AlertmanagerError::Ca {
                    path: path.to_path_buf(),
                    reason,
                };
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| ca(e.to_string()))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| ca(e.to_string()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(ca("no certificate in it".into()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Alertmanager {
            alerts_url: format!("{}/api/v2/alerts", base.to_string().trim_end_matches('/')),
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Posts alerts (Alertmanager's v2 objects).
    pub async fn post(&self, alerts: &[serde_json::Value]) -> Result<(), AlertmanagerError> {
        let body = serde_json::to_vec(alerts).unwrap_or_default();
        let request = hyper::Request::post(&self.alerts_url)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AlertmanagerError::Url(e.to_string()))?;
        match tokio::time::timeout(CALL_TIMEOUT, self.http.request(request)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(AlertmanagerError::Refused(response.status())),
            Ok(Err(error)) => Err(AlertmanagerError::Unreachable(crate::probes::error_chain(
                &error,
            ))),
            Err(_) => Err(AlertmanagerError::Timeout(CALL_TIMEOUT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ca_files_are_checked_at_start() {
        let uri = |s: &str| s.parse::<hyper::Uri>().unwrap();
        assert!(matches!(
            Alertmanager::new(&uri("ftp://am:9093"), None),
            Err(AlertmanagerError::Url(_))
        ));
        assert!(Alertmanager::new(&uri("https://am:9093"), None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = Alertmanager::new(&uri("https://am:9093"), Some(&empty)).unwrap_err();
        assert!(error.to_string().contains("no certificate"), "{error}");
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            Alertmanager::new(&uri("https://am:9093"), Some(&missing)),
            Err(AlertmanagerError::Ca { .. })
        ));
    }
}
