//! A small REST client for the CLI's daemon commands.

use super::{CliError, CliResult, denied};
use crate::secret::Passphrase;
use anyhow::anyhow;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Client {
    http: reqwest::Client,
    base: String,
    credential: Credential,
}

/// How the CLI authenticates to the daemon.
pub enum Credential {
    None,
    Master(Passphrase),
    /// A session token (the `tx` commands act as the agent would).
    Session(Passphrase),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::None => "Credential::None",
            Credential::Master(_) => "Credential::Master([REDACTED])",
            Credential::Session(_) => "Credential::Session([REDACTED])",
        })
    }
}

/// The daemon's URL: `--url` > `BURSAR_URL` > the default loopback address.
pub fn daemon_url(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("BURSAR_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| crate::config::DEFAULT_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The HTTP client every CLI command (and `bursar mcp`) talks to the daemon with.
pub fn http_client() -> CliResult<reqwest::Client> {
    crate::tls::client(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .no_proxy()
    })
    .map_err(|e| anyhow!("building the HTTP client: {e}").into())
}

impl Client {
    pub fn new(url: Option<String>, credential: Credential) -> CliResult<Self> {
        let base = daemon_url(url);
        if let Credential::Master(password) = &credential {
            check_master_header(password)?;
            if let Some(host) = plain_http_remote_host(&base) {
                eprintln!(
                    "warning: sending the master password over plain http:// to {host}, which is not loopback: anyone on the path can read it; use https:// (a TLS proxy) or an SSH tunnel"
                );
            }
        }
        Ok(Self {
            http: http_client()?,
            base,
            credential,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> CliResult<T> {
        self.call(Method::GET, path, None::<&()>, &[])
            .await
            .map(|(body, _)| body)
    }

    /// `get` for a paged listing: the page and the next page's cursor (`X-Next-Before`).
    pub async fn get_page<T: DeserializeOwned>(&self, path: &str) -> CliResult<(T, Option<String>)> {
        let (body, headers) = self.call(Method::GET, path, None::<&()>, &[]).await?;
        let next = headers
            .get(crate::api::rest::NEXT_BEFORE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((body, next))
    }

    pub async fn send<B: Serialize, T: DeserializeOwned>(&self, method: Method, path: &str, body: &B) -> CliResult<T> {
        self.call(method, path, Some(body), &[]).await.map(|(body, _)| body)
    }

    /// `send` with extra headers (the owner's `X-Owner-Message` / `X-Owner-Signature`).
    pub async fn send_with<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        headers: &[(String, String)],
    ) -> CliResult<T> {
        self.call(method, path, Some(body), headers).await.map(|(body, _)| body)
    }

    /// `send` for an answer that is not JSON (the backup archive): its bytes.
    pub async fn send_for_bytes<B: Serialize>(&self, method: Method, path: &str, body: &B) -> CliResult<Vec<u8>> {
        self.call_raw(method, path, Some(body), &[])
            .await
            .map(|(bytes, _)| bytes)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(String, String)],
    ) -> CliResult<(T, reqwest::header::HeaderMap)> {
        let (bytes, response_headers) = self.call_raw(method, path, body, headers).await?;
        serde_json::from_slice(&bytes)
            .map(|body| (body, response_headers))
            .map_err(|e| anyhow!("unexpected answer from the daemon: {e}").into())
    }

    /// One request; the answer's bytes and headers on success, the daemon's error otherwise.
    async fn call_raw<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(String, String)],
    ) -> CliResult<(Vec<u8>, reqwest::header::HeaderMap)> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        match &self.credential {
            Credential::None => {}
            Credential::Master(master) => req = req.header("X-Master-Password", master.expose_secret()),
            Credential::Session(token) => req = req.bearer_auth(token.expose_secret()),
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req.send().await.map_err(|_| {
            anyhow!("cannot reach the bursar daemon at {}\nis `bursar start` running? (BURSAR_URL or --url point elsewhere)", self.base)
        })?;
        let status = res.status();
        let response_headers = res.headers().clone();
        let bytes = res
            .bytes()
            .await
            .map_err(|e| anyhow!("reading the daemon's answer: {e}"))?;
        if status.is_success() {
            return Ok((bytes.to_vec(), response_headers));
        }
        let err = anyhow!(error_text(status, &bytes));
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => denied(err),
            _ => CliError::from(err),
        })
    }
}

/// What an error answer says: its message and code, the code read as text (a daemon of another
/// version may answer one this CLI does not know, and its message still reaches the operator).
fn error_text(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    serde_json::from_slice::<Body>(body)
        .map(|b| format!("{} ({})", b.error.message, b.error.code))
        .unwrap_or_else(|_| format!("daemon answered {status}"))
}

/// Refuses, with the reason, a master password no `X-Master-Password` header can carry
/// (without this, the request fails to build and reads as "cannot reach the daemon").
fn check_master_header(password: &Passphrase) -> CliResult {
    if reqwest::header::HeaderValue::from_str(password.expose_secret()).is_ok() {
        return Ok(());
    }
    Err(anyhow!(
        "the master password contains a character that the X-Master-Password header cannot carry (a control character such as NUL or a newline)\ncheck its source: a password file holds it on one line (one trailing newline is fine)"
    )
    .into())
}

/// The host of an `http://` daemon URL that is not loopback (where the master password would
/// cross a network in clear), or `None`.
fn plain_http_remote_host(base: &str) -> Option<String> {
    let url = reqwest::Url::parse(base).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_owned())
}

/// Ids and filters go into URLs: accept only the characters they can contain.
pub(super) fn path_segment(s: &str) -> CliResult<&str> {
    if !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(s)
    } else {
        Err(CliError {
            code: 2,
            error: anyhow!("invalid identifier {:?}", crate::domain::sanitize::for_message(s)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_answer_shows_its_message_whatever_its_code() {
        let known = br#"{"error":{"code":"INVALID_INPUT","message":"amount: must be greater than zero"}}"#;
        assert_eq!(
            error_text(StatusCode::BAD_REQUEST, known),
            "amount: must be greater than zero (INVALID_INPUT)"
        );
        let newer = br#"{"error":{"code":"SOMETHING_NEW","message":"a newer daemon says no"}}"#;
        assert_eq!(
            error_text(StatusCode::CONFLICT, newer),
            "a newer daemon says no (SOMETHING_NEW)"
        );
        assert_eq!(
            error_text(StatusCode::BAD_GATEWAY, b"<html>proxy</html>"),
            "daemon answered 502 Bad Gateway"
        );
    }

    #[test]
    fn plain_http_to_a_remote_host_is_flagged() {
        for local in [
            "http://127.0.0.1:3100",
            "http://localhost:3100",
            "http://[::1]:3100",
            "http://127.0.0.2",
            "https://bursar.example",
        ] {
            assert_eq!(plain_http_remote_host(local), None, "{local}");
        }
        assert_eq!(
            plain_http_remote_host("http://10.0.0.5:3100").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(
            plain_http_remote_host("http://bursar.example").as_deref(),
            Some("bursar.example")
        );
    }

    #[test]
    fn a_password_no_header_can_carry_is_a_clear_error() {
        let nul = Passphrase::from("\u{0}".repeat(40));
        let err = check_master_header(&nul).unwrap_err().error.to_string();
        assert!(err.contains("X-Master-Password header cannot carry"), "{err}");
        assert!(check_master_header(&Passphrase::from("fine password 123".to_owned())).is_ok());
        let cred = Credential::Master(Passphrase::from("hunter2hunter2".to_owned()));
        assert!(!format!("{cred:?}").contains("hunter2"));
    }
}
