//! A small REST client for the CLI's daemon commands.

use super::{CliError, CliResult, denied};
use crate::api::dto::ErrorBody;
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

/// The daemon's URL: `--url` > `BURSAR_URL` > the default loopback address.
pub fn daemon_url(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var("BURSAR_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| crate::config::DEFAULT_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The HTTP client every CLI command (and `bursar mcp`) talks to the daemon with.
pub fn http_client() -> CliResult<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .no_proxy()
        .build()
        .map_err(|e| anyhow!("building the HTTP client: {e}").into())
}

impl Client {
    pub fn new(url: Option<String>, credential: Credential) -> CliResult<Self> {
        Ok(Self {
            http: http_client()?,
            base: daemon_url(url),
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

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(String, String)],
    ) -> CliResult<(T, reqwest::header::HeaderMap)> {
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
            return serde_json::from_slice(&bytes)
                .map(|body| (body, response_headers))
                .map_err(|e| anyhow!("unexpected answer from the daemon: {e}").into());
        }
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| format!("{} ({})", b.error.message, b.error.code))
            .unwrap_or_else(|_| format!("daemon answered {status}"));
        let err = anyhow!(message);
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS => denied(err),
            _ => CliError::from(err),
        })
    }
}
