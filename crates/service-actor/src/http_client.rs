//! The HTTP client of remote servers (streamable HTTP and SSE): plain `http://` and `https://`
//! through rustls with the `ring` provider, trusting the system's root certificates (or the
//! bundle named by `SSL_CERT_FILE` / `SSL_CERT_DIR`, the usual OpenSSL variables).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Makes `ring` the process-wide default rustls provider unless one is installed already (first
/// wins, so an embedder's own choice stands). reqwest is built with `rustls-no-provider`: any
/// reqwest client in the process that is not given a TLS config (rmcp's own constructors, for
/// one) needs a default provider, and panics without one. Called by `Store::open` and before
/// the first remote connection.
pub fn install_default_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The TLS configuration, built once per process (loading the roots reads the system store).
fn tls_config() -> &'static Result<rustls::ClientConfig, String> {
    static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        install_default_tls_provider();
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
        if added == 0 {
            tracing::warn!(
                errors = ?loaded.errors,
                "no trusted root certificates found: https servers will be refused \
                 (set SSL_CERT_FILE to a CA bundle)"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(config)
    })
}

/// The configured headers, each checked: a bad name or value is an error naming the header.
pub(crate) fn parse_headers(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, String> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("header name '{k}' is invalid: {e}"))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|e| format!("header '{k}' has an invalid value: {e}"))?;
            Ok((name, value))
        })
        .collect()
}

/// A client builder with our TLS configuration.
fn builder() -> Result<reqwest::ClientBuilder, String> {
    let tls = tls_config().clone()?;
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

fn built(b: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    b.build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// A client for OAuth metadata that follows no redirect (the document must come from where it
/// was asked for).
pub(crate) fn no_redirect_client() -> Result<reqwest::Client, String> {
    built(builder()?.redirect(reqwest::redirect::Policy::none()))
}

/// A client that sends `headers` with every request.
pub(crate) fn client(headers: &BTreeMap<String, String>) -> Result<reqwest::Client, String> {
    let map: reqwest::header::HeaderMap = parse_headers(headers)?.into_iter().collect();
    built(builder()?.default_headers(map))
}
