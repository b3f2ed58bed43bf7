//! Outbound HTTP clients and their TLS roots: the system's CA certificates when it has them
//! (so an operator's own CA, via `SSL_CERT_FILE` / `SSL_CERT_DIR`, works), otherwise the
//! Mozilla roots built into the binary (`webpki-root-certs`). An image without a CA bundle
//! (distroless, scratch, a minimal Debian) then still starts, still verifies TLS, and a
//! loopback-only setup needs nothing at all.

use std::sync::Once;

/// Builds the client `make` describes, with the bundled roots when the system has none.
/// `make` is called again for the second attempt (a builder is consumed by `build`).
pub fn client(make: impl Fn() -> reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
    let first = match make().build() {
        Ok(client) => return Ok(client),
        Err(err) => err,
    };
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der).ok());
    match make().tls_certs_only(roots).build() {
        Ok(client) => {
            static WARNED: Once = Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    error = %first,
                    "no usable system CA certificates: TLS uses the Mozilla roots built into bursar \
                     (install ca-certificates or set SSL_CERT_FILE to use the system's or your own)"
                );
            });
            Ok(client)
        }
        Err(_) => Err(first),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_roots_parse() {
        let parsed = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter(|der| reqwest::Certificate::from_der(der).is_ok())
            .count();
        assert!(parsed > 100, "only {parsed} bundled roots parse");
    }
}
