//! Configuration: `<data>/config.toml`, then `BURSAR_<SECTION>_<KEY>` environment overrides,
//! validated once into [`Config`]. Also the rules for secret inputs (`_FILE` wins, both is an
//! error, plain env warns) and for data-directory permissions.

use crate::domain::{ChainKind, ChainName};
use crate::keystore::KdfParams;
use crate::secret::Passphrase;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "config.toml";
pub const RECOVERY_KEY_FILE: &str = "recovery.key";
/// The next `recovery.key`, staged by `set-master` before its commit (see [`RecoveryKey`]).
pub const RECOVERY_KEY_STAGED_FILE: &str = "recovery.key.new";
pub const STORE_DIR: &str = "store";
pub const DEFAULT_URL: &str = "http://127.0.0.1:3100";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("invalid config {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid value for {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("both {0}_FILE and {0} are set; give the secret one way only")]
    BothSecretForms(String),
    #[error(
        "{path} is accessible by group or others (mode {mode:04o})\nfix: chmod {want:o} {path}   (or run `bursar doctor --fix`)"
    )]
    Permissions { path: PathBuf, mode: u32, want: u32 },
}

/// bursar configuration: `<data>/config.toml`. Every key can be overridden by
/// `BURSAR_<SECTION>_<KEY>` (chains: `BURSAR_CHAINS_<NAME>_<KEY>`). Secrets are never inline:
/// keys that name a secret are file paths (`*_file`). Generated into
/// `schemas/config.schema.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub keystore: KeystoreConfig,
    pub sessions: SessionConfig,
    pub log: LogConfig,
    pub prices: PricesConfig,
    pub transfers: TransfersConfig,
    pub owner: OwnerConfig,
    pub autostop: AutoStopConfig,
    pub notifications: NotificationsConfig,
    pub metrics: MetricsConfig,
    pub chains: BTreeMap<String, ChainConfig>,
}

/// `GET /metrics` (Prometheus text format): who may read it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `loopback`: a peer on 127.0.0.0/8 or ::1, no credential (default; in a container the
    /// published port's peer is not loopback, so use `token` or `master` there); `token`:
    /// `Authorization: Bearer <the token in token_file>` (a Prometheus `credentials_file`);
    /// `master`: the `X-Master-Password` header; `off`: 404.
    pub access: MetricsAccess,
    /// The scrape token for `access = "token"`: a 0600 file (relative paths are in the data
    /// dir), at least 16 characters; re-read on SIGHUP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    #[default]
    Loopback,
    Token,
    Master,
    Off,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            access: MetricsAccess::Loopback,
            token_file: None,
        }
    }
}

/// Owner messages (approvals, owner connect/disconnect, owner kill switch).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OwnerConfig {
    /// The domain (RFC 3986 authority) every owner message binds, and the base of the links
    /// in them. Default: the bind address, e.g. `127.0.0.1:3100`.
    pub domain: Option<String>,
}

/// AutoStop: suspend a wallet (as the kill switch does) when its agent misbehaves. 0 disables
/// a trigger.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AutoStopConfig {
    /// Consecutive sends that end DENIED or FAILED.
    pub consecutive_failures: u32,
    /// Send requests within `burst_window_seconds`.
    pub burst_requests: u32,
    pub burst_window_seconds: u64,
}

impl Default for AutoStopConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 10,
            burst_requests: 120,
            burst_window_seconds: 60,
        }
    }
}

/// USD prices for USD policy rules. Unknown or stale prices escalate to APPROVAL.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PricesConfig {
    /// A price older than this is stale.
    pub max_age_seconds: u64,
    /// Static USD prices of native assets by symbol, e.g. `ETH = "3000"` (the operator's word:
    /// always fresh).
    pub native: BTreeMap<String, String>,
    /// Static USD prices of tokens by `"<chain>:<address>"` (never by symbol: anyone can
    /// deploy a token called USDC).
    pub tokens: BTreeMap<String, String>,
    /// A CoinGecko-compatible HTTP source (`GET {base_url}/simple/price?ids=…&vs_currencies=usd`).
    pub http: Option<HttpPricesConfig>,
    /// An HTTP price more than this many times the last accepted one, or less than its
    /// 1/this, is refused: the asset's price counts as unknown (USD rules escalate to
    /// APPROVAL) until the source is back in range. 0 turns the check off.
    pub max_change_ratio: u32,
    /// The operator's floor and ceiling per asset key (a native symbol, or
    /// `"<chain>:<address>"`), in USD: `ETH = { min = "100", max = "100000" }`. An HTTP price
    /// outside them counts as unknown; static prices must lie inside.
    pub bounds: BTreeMap<String, PriceBounds>,
}

impl Default for PricesConfig {
    fn default() -> Self {
        Self {
            max_age_seconds: 300,
            native: BTreeMap::new(),
            tokens: BTreeMap::new(),
            http: None,
            max_change_ratio: 10,
            bounds: BTreeMap::new(),
        }
    }
}

/// A USD floor and/or ceiling for one asset's price (decimal strings, greater than zero).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpPricesConfig {
    /// `https://`; plain `http://` only to a loopback address (a local stub or proxy).
    #[schemars(regex(pattern = "^https?://"))]
    pub base_url: String,
    /// Asset key (a native symbol, or `"<chain>:<address>"`) → the source's coin id.
    pub ids: BTreeMap<String, String>,
    #[serde(default = "sixty")]
    pub refresh_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TransfersConfig {
    /// How long `send` waits for confirmation before answering SUBMITTED.
    pub confirm_wait_seconds: u64,
    /// How often the workers look for due DELAY transfers, expired approvals and
    /// unconfirmed transactions.
    #[schemars(range(min = 1, max = 60000))]
    pub worker_interval_ms: u64,
    /// Transfers one wallet may have that are not final yet (REQUESTED, DELAYED,
    /// PENDING_APPROVAL, SIGNED, SUBMITTED). A send beyond it is refused with 429
    /// `TOO_MANY_OPEN` before anything is stored.
    #[schemars(range(min = 1, max = 1000000))]
    pub max_open_per_wallet: u32,
    /// Days to keep final DENIED and CANCELLED transfers (nothing moved for them). 0 keeps
    /// them forever; otherwise an hourly sweep deletes older ones with their idempotency keys
    /// (a retry of such a key then starts a new request) and audits one summary entry.
    #[schemars(range(max = 36500))]
    pub retain_denied_days: u32,
}

impl Default for TransfersConfig {
    fn default() -> Self {
        Self {
            confirm_wait_seconds: 15,
            worker_interval_ms: 250,
            max_open_per_wallet: 1000,
            retain_denied_days: 0,
        }
    }
}

impl PricesConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let usd = |section: &str, key: &str, value: &str| {
            let v = crate::domain::Amount::parse_decimal(value, 6)
                .map_err(|e| ConfigError::Invalid(format!("[{section}] {key} = {value:?}: {e}")))?
                .base_units;
            if v.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "[{section}] {key} = {value:?}: a price must be greater than zero"
                )));
            }
            Ok(v)
        };
        let mut bounds = BTreeMap::new();
        for (key, b) in &self.bounds {
            let min = b.min.as_deref().map(|v| usd("prices.bounds", key, v)).transpose()?;
            let max = b.max.as_deref().map(|v| usd("prices.bounds", key, v)).transpose()?;
            match (min, max) {
                (None, None) => {
                    return Err(ConfigError::Invalid(format!(
                        "[prices.bounds] {key}: give min, max or both"
                    )));
                }
                (Some(lo), Some(hi)) if lo > hi => {
                    return Err(ConfigError::Invalid(format!("[prices.bounds] {key}: min is above max")));
                }
                _ => {}
            }
            bounds.insert(key.to_lowercase(), (min, max));
        }
        for (section, table) in [("prices.native", &self.native), ("prices.tokens", &self.tokens)] {
            for (key, value) in table {
                let price = usd(section, key, value)?;
                if let Some((min, max)) = bounds.get(&key.to_lowercase())
                    && (min.is_some_and(|m| price < m) || max.is_some_and(|m| price > m))
                {
                    return Err(ConfigError::Invalid(format!(
                        "[{section}] {key} = {value:?} lies outside its [prices.bounds]"
                    )));
                }
            }
        }
        if self.max_change_ratio == 1 {
            return Err(ConfigError::Invalid(
                "[prices] max_change_ratio must be 0 (off) or at least 2".into(),
            ));
        }
        if let Some(http) = &self.http
            && !is_secure_or_loopback(&http.base_url)
        {
            return Err(ConfigError::Invalid(
                "[prices.http] base_url must be an https:// URL (plain http:// only to a loopback address such as \
                 http://127.0.0.1:8080): a price fetched over plain HTTP can be rewritten on the way, and USD limits \
                 trust it"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// `https://…`, or `http://` to `localhost`, a loopback IPv4 address or `[::1]`.
fn is_secure_or_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => true,
        (Some("http"), Some(host)) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// Operator notifications: where bursar tells a human that a NOTIFY transfer went out, a DELAY
/// started, an approval waits, a kill switch moved, or credentials are being guessed. Every
/// sender is optional; none configured means no queue and no task. Secrets only by file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Events waiting for delivery, per sender; when full, new events are dropped (counted
    /// and logged), never the caller blocked.
    pub queue_capacity: usize,
    /// Timeout of one delivery attempt (connect + request + response head).
    pub timeout_ms: u64,
    /// Attempts per event and sender before it is recorded as `notification_failed`.
    pub max_attempts: u32,
    /// First retry pause; doubled per attempt up to `backoff_max_ms`, with jitter.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Failed authentications of one kind per minute that make one `auth_failure_burst`
    /// event (at most one per minute and kind). 0 turns it off.
    pub auth_failure_burst: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntfy: Option<NtfyConfig>,
    /// When the daily summary goes out (hour of the day, UTC), to the senders that set
    /// `daily_summary = true`. It covers the 24 hours before.
    #[schemars(range(max = 23))]
    pub daily_summary_hour_utc: u8,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 256,
            timeout_ms: 5_000,
            max_attempts: 5,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 30_000,
            auth_failure_burst: 5,
            webhook: None,
            telegram: None,
            slack: None,
            ntfy: None,
            daily_summary_hour_utc: 8,
        }
    }
}

/// A generic webhook: JSON `{type, id, createdAt, data}`, signed with HMAC-SHA256 over
/// `<timestamp>.<body>` (`X-Bursar-Timestamp`, `X-Bursar-Signature: sha256=<hex>`).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The HMAC key, in a 0600 file (relative paths are relative to the data dir).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Also send the daily summary here (off by default).
    #[serde(default)]
    pub daily_summary: bool,
}

/// A Telegram bot: `POST <base_url>/bot<token>/sendMessage {chat_id, text}`, plain text.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    #[serde(default = "telegram_base_url")]
    pub base_url: String,
    /// The bot token, in a 0600 file (it travels in the URL path: never logged).
    #[serde(default)]
    pub bot_token_file: Option<PathBuf>,
    /// A chat id (`-100…`) or `@channel`; a number is accepted too.
    #[serde(default, deserialize_with = "string_or_integer")]
    pub chat_id: String,
    /// Also send the daily summary here (off by default).
    #[serde(default)]
    pub daily_summary: bool,
}

fn telegram_base_url() -> String {
    "https://api.telegram.org".into()
}

/// A Slack incoming webhook: `POST <url> {text}`. The URL is itself the credential.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The webhook URL, in a 0600 file.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Also send the daily summary here (off by default).
    #[serde(default)]
    pub daily_summary: bool,
}

/// An ntfy(-compatible) push server: `POST <base_url> {topic, title, message, priority, click,
/// actions}` (JSON publishing), plain text, `view` action buttons to the approval and panic
/// pages. `https://`, or `http://` to a loopback address only: the topic name (and the
/// token, if any) must not cross a network in clear.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// The server, e.g. `https://ntfy.sh` or your own.
    pub base_url: String,
    /// The topic (`[A-Za-z0-9_-]`, 1–64 characters). On a public server the topic name is
    /// the only thing keeping others from reading it: pick a long random one, or use a token.
    pub topic: String,
    /// An access token (`Authorization: Bearer`), in a 0600 file. Optional.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Priority (1 = min … 5 = max) per event type, e.g. `{ approval_pending = 5 }`;
    /// unlisted types use the defaults (README, Notifications).
    #[serde(default)]
    pub priority: std::collections::BTreeMap<String, u8>,
    /// Also send the daily summary here (off by default).
    #[serde(default)]
    pub daily_summary: bool,
}

/// Event types, for `[notifications.ntfy] priority` keys.
pub const EVENT_TYPES: [&str; 7] = [
    "transfer_notify",
    "transfer_delayed",
    "approval_pending",
    "kill_switch",
    "auto_stop",
    "auth_failure_burst",
    "daily_summary",
];

fn string_or_integer<'de, D: serde::Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        S(String),
        I(i64),
    }
    Ok(match Raw::deserialize(de)? {
        Raw::S(s) => s,
        Raw::I(i) => i.to_string(),
    })
}

/// `[notifications.<sender>]` keys, for `BURSAR_NOTIFICATIONS_<SENDER>_<KEY>` overrides. The
/// inline forms are listed too, so an override of one is refused with the reason instead of
/// being ignored.
const NOTIFICATION_SENDER_KEYS: [(&str, &[&str]); 4] = [
    ("webhook", &["url", "secret_file", "secret", "daily_summary"]),
    (
        "telegram",
        &[
            "base_url",
            "bot_token_file",
            "chat_id",
            "bot_token",
            "token",
            "daily_summary",
        ],
    ),
    ("slack", &["webhook_url_file", "webhook_url", "url", "daily_summary"]),
    ("ntfy", &["base_url", "topic", "token_file", "token", "daily_summary"]),
];

/// Keys that would put a secret inline in the config (or env), with the file key to use.
const INLINE_SECRETS: [(&str, &str, &str); 6] = [
    ("ntfy", "token", "token_file"),
    ("webhook", "secret", "secret_file"),
    ("telegram", "bot_token", "bot_token_file"),
    ("telegram", "token", "bot_token_file"),
    ("slack", "webhook_url", "webhook_url_file"),
    ("slack", "url", "webhook_url_file"),
];

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address. Anything but loopback logs a warning and is flagged by `doctor`.
    pub bind: SocketAddr,
    /// Extra `Host` header values accepted besides the loopback names (`localhost`,
    /// `127.0.0.1`, `[::1]`, and the bound address), which are accepted on any port. An
    /// entry with a port matches that port only; one without matches any port.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values accepted besides the loopback origins (`http://localhost:*`,
    /// `http://127.0.0.1:*`, `http://[::1]:*`), e.g. `https://wallet.example`.
    pub allowed_origins: Vec<String>,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: usize,
    /// Wrong master passwords audited per source and minute; past it, wrong ones get 429
    /// (after a growing delay). The right password is never refused for rate reasons.
    pub master_auth_failures_per_minute: u32,
    /// Owner proofs that failed for one wallet per minute before unverified ones get 429
    /// and are no longer audited. A proof the owner really signed is never refused for rate
    /// reasons; junk that names no wallet with an owner counts nowhere.
    pub owner_auth_failures_per_minute: u32,
    /// The daemon's address as operators reach it, for links in notifications (e.g. the
    /// approval page). Empty: `http://<bind>`.
    pub public_url: String,
    /// A connection must deliver a request's complete headers within this many seconds of
    /// waiting for one, or it is closed (slowloris). This also closes keep-alive
    /// connections idle this long.
    #[schemars(range(min = 1, max = 3600))]
    pub header_read_timeout_seconds: u64,
    /// A REST request that takes longer gets 503 `TIMEOUT` (the work it started still
    /// finishes). Not applied to the MCP event streams (`/mcp`, `/sse`).
    #[schemars(range(min = 1, max = 3600))]
    pub request_timeout_seconds: u64,
    /// Open connections at once. At the cap, a new connection closes the connection that
    /// has been idle (or stalled before its headers) the longest; when every connection is
    /// busy, new ones wait in the listen queue.
    #[schemars(range(min = 8, max = 1000000))]
    pub max_connections: usize,
    /// MCP sessions (`/mcp`) one bursar session may hold open; more get 429 until one is
    /// closed (`DELETE /mcp`) or expires.
    #[schemars(range(min = 1, max = 100000))]
    pub max_mcp_sessions_per_session: usize,
    /// MCP sessions (`/mcp`) open at once over all bursar sessions.
    #[schemars(range(min = 1, max = 100000))]
    pub max_mcp_sessions: usize,
    /// An MCP session (`/mcp`) with no request for this many seconds is closed.
    #[schemars(range(min = 1, max = 604800))]
    pub mcp_session_idle_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 3100)),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            master_auth_failures_per_minute: 10,
            owner_auth_failures_per_minute: 10,
            public_url: String::new(),
            header_read_timeout_seconds: 30,
            request_timeout_seconds: 60,
            max_connections: 1024,
            max_mcp_sessions_per_session: 16,
            max_mcp_sessions: 1024,
            mcp_session_idle_seconds: 1800,
        }
    }
}

impl ServerConfig {
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let in_range = |key: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!("[server] {key} must be in {min}..={max}")))
            }
        };
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        in_range("header_read_timeout_seconds", self.header_read_timeout_seconds, 1, 3600)?;
        in_range("request_timeout_seconds", self.request_timeout_seconds, 1, 3600)?;
        in_range("max_connections", count(self.max_connections), 8, 1_000_000)?;
        in_range("max_mcp_sessions", count(self.max_mcp_sessions), 1, 100_000)?;
        in_range(
            "max_mcp_sessions_per_session",
            count(self.max_mcp_sessions_per_session),
            1,
            count(self.max_mcp_sessions),
        )?;
        in_range("mcp_session_idle_seconds", self.mcp_session_idle_seconds, 1, 604_800)
    }

    /// `public_url` without a trailing slash, or `http://<local authority>` when unset.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.local_authority())
        } else {
            self.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The bind address as a client on this host reaches it: `127.0.0.1:<port>` when the bind
    /// address is unspecified (`0.0.0.0`, `::`), which no client can connect to or sign for.
    pub fn local_authority(&self) -> String {
        if self.bind.ip().is_unspecified() {
            format!("127.0.0.1:{}", self.bind.port())
        } else {
            self.bind.to_string()
        }
    }
}

/// Argon2id cost for new keystores (`init`, `set-master`); existing ones keep theirs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KeystoreConfig {
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

impl Default for KeystoreConfig {
    fn default() -> Self {
        let r = KdfParams::RECOMMENDED;
        Self {
            argon2_memory_kib: r.m_cost_kib,
            argon2_iterations: r.t_cost,
            argon2_parallelism: r.p_cost,
        }
    }
}

impl KeystoreConfig {
    pub fn kdf(&self) -> KdfParams {
        KdfParams {
            m_cost_kib: self.argon2_memory_kib,
            t_cost: self.argon2_iterations,
            p_cost: self.argon2_parallelism,
        }
    }
}

/// Session defaults and ceilings.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub default_ttl_seconds: u64,
    pub default_max_renewals: u32,
    pub default_absolute_lifetime_seconds: u64,
    pub max_ttl_seconds: u64,
    pub max_absolute_lifetime_seconds: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            default_ttl_seconds: 24 * 3600,
            default_max_renewals: 30,
            default_absolute_lifetime_seconds: 30 * 24 * 3600,
            max_ttl_seconds: 30 * 24 * 3600,
            max_absolute_lifetime_seconds: 365 * 24 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `info`, `bursar=debug`, `trace`.
    pub level: String,
    /// `text` or `json`.
    #[schemars(extend("enum" = ["text", "json"]))]
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// `evm` or `solana`.
    #[schemars(extend("enum" = ["evm", "solana"]))]
    pub kind: String,
    /// The node's JSON-RPC URL (http:// or https://; may carry an API key, never logged).
    #[schemars(regex(pattern = "^https?://"))]
    pub rpc_url: String,
    /// Required for EVM chains; checked against the node before first use.
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// Defaults to ETH (EVM) or SOL (Solana).
    #[serde(default)]
    #[schemars(regex(pattern = "^[A-Za-z0-9]{1,16}$"))]
    pub native_symbol: Option<String>,
    /// Blocks to wait before a transfer counts as CONFIRMED.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub confirmations: u64,
    /// Solana: the commitment a transfer must reach to count as CONFIRMED, and at which
    /// balances, blockhashes and simulations are read (`processed`, `confirmed`,
    /// `finalized`; default `confirmed`).
    #[serde(default)]
    #[schemars(extend("enum" = ["processed", "confirmed", "finalized"]))]
    pub commitment: Option<String>,
    /// Solana: the cluster's genesis hash (base58, `solana genesis-hash`); checked against the
    /// node's `getGenesisHash` before first use, like an EVM chain id. Unset: not checked.
    #[serde(default)]
    pub genesis_hash: Option<String>,
    /// Solana: the compute-unit price (priority fee) every transfer offers, in micro-lamports
    /// per compute unit. 0: base fee only.
    #[serde(default)]
    pub compute_unit_price_micro_lamports: u64,
    /// Solana: the highest compute-unit price bursar signs, in micro-lamports per compute unit.
    #[serde(default = "default_max_compute_unit_price")]
    pub max_compute_unit_price_micro_lamports: u64,
    /// Seconds a signed transfer may stay without a receipt after the account's nonce has
    /// moved past it before it counts as dropped (FAILED). Nodes can report the nonce as
    /// used before they serve the receipt; this never fails a transfer that was mined.
    #[serde(default = "sixty")]
    #[schemars(range(min = 1, max = 86400))]
    pub dropped_after_seconds: u64,
    /// Milliseconds to open a connection to the node before the call fails.
    #[serde(default = "rpc_connect_timeout_ms")]
    #[schemars(range(min = 1, max = 60000))]
    pub rpc_connect_timeout_ms: u64,
    /// Milliseconds one RPC call may take in all (connect, send, answer) before it fails.
    /// Nothing that stops money (kill switch, cancel, revoke) ever waits on it.
    #[serde(default = "rpc_timeout_ms")]
    #[schemars(range(min = 1, max = 600000))]
    pub rpc_timeout_ms: u64,
    /// EVM: the highest max fee per gas bursar signs, in gwei (decimal string). A node quote
    /// above it is refused, never signed.
    #[serde(default = "default_max_fee_per_gas_gwei")]
    pub max_fee_per_gas_gwei: String,
    /// EVM: the highest priority fee (tip) per gas bursar signs, in gwei (decimal string).
    #[serde(default = "default_max_priority_fee_per_gas_gwei")]
    pub max_priority_fee_per_gas_gwei: String,
    /// The most one transfer may pay in fees, in whole native units (e.g. "0.01"). Unset: no
    /// total cap beyond the per-gas ones (fees still count against the budgets).
    #[serde(default)]
    pub max_fee_per_transfer: Option<String>,
    /// Seconds a signed transfer may wait without a receipt before bursar signs a replacement
    /// with the same nonce and higher fees (within the caps); it is replaced at once when its
    /// max fee is below the next block's base fee. 0: never on its own (`bursar tx speed-up`).
    #[serde(default = "default_replace_after_seconds")]
    #[schemars(range(max = 86400))]
    pub replace_after_seconds: u64,
    /// EVM: milliseconds a fee-market reading (`eth_feeHistory`) is reused for later quotes
    /// instead of asking the node again on every send; the caps apply to every quote either
    /// way. 0: a fresh reading for every transfer.
    #[serde(default = "default_fee_quote_max_age_ms")]
    #[schemars(range(max = 60000))]
    pub fee_quote_max_age_ms: u64,
}

fn default_max_compute_unit_price() -> u64 {
    100_000
}

fn default_fee_quote_max_age_ms() -> u64 {
    1_000
}

fn default_replace_after_seconds() -> u64 {
    120
}

fn default_max_fee_per_gas_gwei() -> String {
    "1000".to_owned()
}

fn default_max_priority_fee_per_gas_gwei() -> String {
    "100".to_owned()
}

/// The fees bursar will sign at most, per chain (wei).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeCaps {
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    pub max_fee_per_transfer: Option<alloy_primitives::U256>,
}

fn one() -> u64 {
    1
}

fn rpc_connect_timeout_ms() -> u64 {
    3_000
}

fn rpc_timeout_ms() -> u64 {
    15_000
}

fn sixty() -> u64 {
    60
}

/// A chain as the rest of bursar sees it: validated.
#[derive(Debug, Clone)]
pub struct Chain {
    pub name: ChainName,
    pub kind: ChainKind,
    pub rpc_url: String,
    pub chain_id: Option<u64>,
    pub native_symbol: String,
    pub native_decimals: u8,
    pub confirmations: u64,
    pub dropped_after: std::time::Duration,
    pub rpc_connect_timeout: std::time::Duration,
    pub rpc_timeout: std::time::Duration,
    pub fee_caps: FeeCaps,
    /// `None`: never replaced on its own.
    pub replace_after: Option<std::time::Duration>,
    /// How long a fee-market reading may be reused for quotes (zero: never).
    pub fee_quote_max_age: std::time::Duration,
    /// Solana: the commitment transfers must reach (`confirmed` unless configured).
    pub commitment: String,
    /// Solana: the expected genesis hash (base58), when configured.
    pub genesis_hash: Option<String>,
    /// Solana: the compute-unit price offered, micro-lamports per unit (within its cap).
    pub compute_unit_price: u64,
    /// Solana: the highest compute-unit price signed, micro-lamports per unit.
    pub max_compute_unit_price: u64,
}

const CHAIN_KEYS: [&str; 17] = [
    "rpc_url",
    "genesis_hash",
    "compute_unit_price_micro_lamports",
    "max_compute_unit_price_micro_lamports",
    "chain_id",
    "native_symbol",
    "confirmations",
    "commitment",
    "kind",
    "dropped_after_seconds",
    "rpc_connect_timeout_ms",
    "rpc_timeout_ms",
    "max_fee_per_gas_gwei",
    "max_priority_fee_per_gas_gwei",
    "max_fee_per_transfer",
    "replace_after_seconds",
    "fee_quote_max_age_ms",
];

/// Keys without a default (absent from the serialised defaults) that still have a
/// `BURSAR_<SECTION>_<KEY>` override.
const OPTIONAL_KEYS: [(&str, &str); 2] = [("owner", "domain"), ("metrics", "token_file")];

/// `BURSAR_*` variables that are not config overrides.
const NON_CONFIG_VARS: [&str; 10] = [
    "BURSAR_LOG",
    "BURSAR_AUTO_PROVISION",
    "BURSAR_BACKUP_PASSPHRASE",
    "BURSAR_BACKUP_PASSPHRASE_FILE",
    "BURSAR_DATA_DIR",
    "BURSAR_URL",
    "BURSAR_MASTER_PASSWORD",
    "BURSAR_MASTER_PASSWORD_FILE",
    "BURSAR_SESSION_TOKEN",
    "BURSAR_SESSION_TOKEN_FILE",
];

impl Config {
    /// Loads `<data>/config.toml` (absent = defaults) and applies env overrides.
    /// Returns the config and warnings to log once logging is up.
    pub fn load(data_dir: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                return Err(ConfigError::Read {
                    path,
                    reason: err.to_string(),
                });
            }
        };
        Self::from_parts(&path, &text, std::env::vars())
    }

    /// The pure part of [`Config::load`]: file text plus an environment.
    pub fn from_parts(
        path: &Path,
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let parse_err = |reason: String| ConfigError::Parse {
            path: path.to_owned(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        let mut warnings = Vec::new();
        let defaults = toml::Table::try_from(Config::default()).expect("defaults serialise");
        let mut env: Vec<_> = env.into_iter().filter(|(k, _)| k.starts_with("BURSAR_")).collect();
        env.sort();
        for (var, value) in env {
            if NON_CONFIG_VARS.contains(&var.as_str()) || var.starts_with("BURSAR_TEST_") {
                continue;
            }
            match override_path(&var, &defaults) {
                Some((section, sub, key)) => {
                    let section_table = table
                        .entry(section)
                        .or_insert_with(|| toml::Value::Table(Default::default()))
                        .as_table_mut()
                        .ok_or_else(|| parse_err(format!("[{}] must be a table", var)))?;
                    let target = match sub {
                        Some(name) => section_table
                            .entry(name)
                            .or_insert_with(|| toml::Value::Table(Default::default()))
                            .as_table_mut()
                            .ok_or_else(|| parse_err(format!("{var}: chain entry must be a table")))?,
                        None => section_table,
                    };
                    target.insert(key, env_value(&value));
                }
                None => warnings.push(format!("ignoring unknown configuration variable {var}")),
            }
        }
        refuse_inline_secrets(&table)?;
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| parse_err(e.to_string()))?;
        if let Some(dir) = path.parent() {
            config.notifications.resolve_paths(dir);
            if let Some(file) = config.metrics.token_file.as_mut()
                && file.is_relative()
                && !file.as_os_str().is_empty()
            {
                *file = dir.join(&*file);
            }
        }
        config.validate()?;
        if !config.server.bind.ip().is_loopback() {
            warnings.push(format!(
                "binding {} which is not loopback: anyone who can reach it can try credentials",
                config.server.bind
            ));
        }
        Ok((config, warnings))
    }

    /// The domain owner messages bind: `[owner] domain`, or the bind address as clients on
    /// this host reach it (`127.0.0.1:<port>` for an unspecified bind address).
    pub fn owner_domain(&self) -> String {
        self.owner
            .domain
            .clone()
            .unwrap_or_else(|| self.server.local_authority())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.keystore
            .kdf()
            .check_bounds()
            .map_err(|e| ConfigError::Invalid(format!("[keystore] {e}")))?;
        self.chains()?;
        if let Some(domain) = &self.owner.domain
            && (domain.contains('@') || domain.parse::<http::uri::Authority>().is_err())
        {
            return Err(ConfigError::Invalid(format!(
                "[owner] domain = {domain:?} is not a host[:port] authority"
            )));
        }
        self.prices.validate()?;
        if self.transfers.worker_interval_ms == 0 || self.transfers.worker_interval_ms > 60_000 {
            return Err(ConfigError::Invalid(
                "[transfers] worker_interval_ms must be in 1..=60000".into(),
            ));
        }
        if !(1..=1_000_000).contains(&self.transfers.max_open_per_wallet) {
            return Err(ConfigError::Invalid(
                "[transfers] max_open_per_wallet must be in 1..=1000000".into(),
            ));
        }
        if self.transfers.retain_denied_days > 36_500 {
            return Err(ConfigError::Invalid(
                "[transfers] retain_denied_days must be at most 36500 (0 keeps them forever)".into(),
            ));
        }
        if !self.server.public_url.is_empty() && !is_http_url(&self.server.public_url) {
            return Err(ConfigError::Invalid(
                "[server] public_url must be an http:// or https:// URL".into(),
            ));
        }
        self.server.validate_limits()?;
        if self.transfers.confirm_wait_seconds >= self.server.request_timeout_seconds {
            return Err(ConfigError::Invalid(
                "[server] request_timeout_seconds must be longer than [transfers] confirm_wait_seconds \
                 (a send waits that long for its confirmation)"
                    .into(),
            ));
        }
        self.notifications.validate()?;
        if self.metrics.access == MetricsAccess::Token && self.metrics.token_file.is_none() {
            return Err(ConfigError::Invalid(
                "[metrics] access = \"token\" needs token_file (a 0600 file holding the scrape token)".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid("[log] format must be \"text\" or \"json\"".into()));
        }
        let s = &self.sessions;
        if s.default_ttl_seconds == 0 || s.default_ttl_seconds > s.max_ttl_seconds {
            return Err(ConfigError::Invalid(
                "[sessions] default_ttl_seconds must be in 1..=max_ttl_seconds".into(),
            ));
        }
        if s.default_absolute_lifetime_seconds > s.max_absolute_lifetime_seconds {
            return Err(ConfigError::Invalid(
                "[sessions] default_absolute_lifetime_seconds exceeds the maximum".into(),
            ));
        }
        Ok(())
    }

    /// The configured chains, validated.
    pub fn chains(&self) -> Result<Vec<Chain>, ConfigError> {
        self.chains
            .iter()
            .map(|(name, c)| {
                let bad = |what: &str| ConfigError::Invalid(format!("[chains.{name}] {what}"));
                let name: ChainName = name
                    .parse()
                    .map_err(|e: crate::domain::DomainError| bad(&e.to_string()))?;
                let kind: ChainKind = c
                    .kind
                    .parse()
                    .map_err(|e: crate::domain::DomainError| bad(&e.to_string()))?;
                let fake = cfg!(feature = "fake-chain") && c.rpc_url.starts_with("fake:");
                if !(c.rpc_url.starts_with("http://") || c.rpc_url.starts_with("https://") || fake) {
                    return Err(bad("rpc_url must be an http:// or https:// URL"));
                }
                let (default_symbol, native_decimals) = match kind {
                    ChainKind::Evm => ("ETH", 18),
                    ChainKind::Solana => ("SOL", 9),
                };
                if kind == ChainKind::Evm && c.chain_id.is_none() {
                    return Err(bad("chain_id is required for EVM chains"));
                }
                let native_symbol = c.native_symbol.clone().unwrap_or_else(|| default_symbol.to_owned());
                if native_symbol.is_empty()
                    || native_symbol.len() > 16
                    || !native_symbol.chars().all(|ch| ch.is_ascii_alphanumeric())
                {
                    return Err(bad("native_symbol must be 1-16 ASCII letters or digits"));
                }
                if c.confirmations == 0 || c.confirmations > 1000 {
                    return Err(bad("confirmations must be in 1..=1000"));
                }
                if c.dropped_after_seconds == 0 || c.dropped_after_seconds > 86_400 {
                    return Err(bad("dropped_after_seconds must be in 1..=86400"));
                }
                let gwei = |field: &str, text: &str| {
                    crate::domain::Amount::parse_decimal(text, 9)
                        .ok()
                        .and_then(|a| u128::try_from(a.base_units).ok())
                        .filter(|wei| *wei > 0)
                        .ok_or_else(|| {
                            bad(&format!(
                                "{field} must be a positive decimal number of gwei, e.g. \"100\""
                            ))
                        })
                };
                let fee_caps = FeeCaps {
                    max_fee_per_gas: gwei("max_fee_per_gas_gwei", &c.max_fee_per_gas_gwei)?,
                    max_priority_fee_per_gas: gwei("max_priority_fee_per_gas_gwei", &c.max_priority_fee_per_gas_gwei)?,
                    max_fee_per_transfer: c
                        .max_fee_per_transfer
                        .as_deref()
                        .map(|t| {
                            crate::domain::Amount::parse_decimal(t, native_decimals)
                                .map(|a| a.base_units)
                                .map_err(|e| bad(&format!("max_fee_per_transfer: {e}")))
                        })
                        .transpose()?,
                };
                if c.replace_after_seconds > 86_400 {
                    return Err(bad("replace_after_seconds must be in 0..=86400"));
                }
                if c.fee_quote_max_age_ms > 60_000 {
                    return Err(bad("fee_quote_max_age_ms must be in 0..=60000"));
                }
                if !(1..=60_000).contains(&c.rpc_connect_timeout_ms) || !(1..=600_000).contains(&c.rpc_timeout_ms) {
                    return Err(bad(
                        "rpc_connect_timeout_ms must be in 1..=60000 and rpc_timeout_ms in 1..=600000",
                    ));
                }
                let commitment = c.commitment.clone().unwrap_or_else(|| "confirmed".to_owned());
                if !["processed", "confirmed", "finalized"].contains(&commitment.as_str()) {
                    return Err(bad("commitment must be processed, confirmed or finalized"));
                }
                if let Some(hash) = &c.genesis_hash
                    && bs58::decode(hash).into_vec().map_or(true, |b| b.len() != 32)
                {
                    return Err(bad("genesis_hash must be a base58 32-byte hash"));
                }
                if c.compute_unit_price_micro_lamports > c.max_compute_unit_price_micro_lamports {
                    return Err(bad(
                        "compute_unit_price_micro_lamports is above max_compute_unit_price_micro_lamports",
                    ));
                }
                Ok(Chain {
                    commitment,
                    genesis_hash: c.genesis_hash.clone(),
                    compute_unit_price: c.compute_unit_price_micro_lamports,
                    max_compute_unit_price: c.max_compute_unit_price_micro_lamports,
                    name,
                    kind,
                    rpc_url: c.rpc_url.clone(),
                    chain_id: c.chain_id,
                    native_symbol,
                    native_decimals,
                    confirmations: c.confirmations,
                    dropped_after: std::time::Duration::from_secs(c.dropped_after_seconds),
                    rpc_connect_timeout: std::time::Duration::from_millis(c.rpc_connect_timeout_ms),
                    rpc_timeout: std::time::Duration::from_millis(c.rpc_timeout_ms),
                    fee_caps,
                    replace_after: (c.replace_after_seconds > 0)
                        .then(|| std::time::Duration::from_secs(c.replace_after_seconds)),
                    fee_quote_max_age: std::time::Duration::from_millis(c.fee_quote_max_age_ms),
                })
            })
            .collect()
    }

    /// The config file written by `init`: commented defaults plus a local anvil chain.
    pub fn initial_file() -> String {
        r#"# bursar configuration. Every key can be overridden by BURSAR_<SECTION>_<KEY>,
# e.g. BURSAR_SERVER_BIND=127.0.0.1:3200 or BURSAR_CHAINS_ANVIL_RPC_URL=http://127.0.0.1:8545.

[server]
bind = "127.0.0.1:3100"

[keystore]
# Argon2id cost for new keystores (RFC 9106 second option). Existing stores keep theirs.
argon2_memory_kib = 65536
argon2_iterations = 3
argon2_parallelism = 4

[log]
level = "info"
format = "text"

# A local development chain (anvil's default port and chain id).
[chains.anvil]
kind = "evm"
rpc_url = "http://127.0.0.1:8545"
chain_id = 31337
native_symbol = "ETH"
confirmations = 1
"#
        .to_owned()
    }
}

/// Maps `BURSAR_SERVER_BIND` to (`server`, None, `bind`) and
/// `BURSAR_CHAINS_MY_NODE_RPC_URL` to (`chains`, Some(`my_node`), `rpc_url`).
fn override_path(var: &str, defaults: &toml::Table) -> Option<(String, Option<String>, String)> {
    let rest = var.strip_prefix("BURSAR_")?.to_ascii_lowercase();
    if let Some((section, key)) = OPTIONAL_KEYS.iter().find(|(s, k)| rest == format!("{s}_{k}")) {
        return Some(((*section).to_owned(), None, (*key).to_owned()));
    }
    if let Some(sender_key) = rest.strip_prefix("notifications_") {
        let found = NOTIFICATION_SENDER_KEYS.iter().find_map(|(sender, keys)| {
            let key = sender_key.strip_prefix(sender)?.strip_prefix('_')?;
            keys.contains(&key)
                .then(|| ("notifications".to_owned(), Some((*sender).to_owned()), key.to_owned()))
        });
        if found.is_some() {
            return found;
        }
    }
    if let Some(chain) = rest.strip_prefix("chains_") {
        return CHAIN_KEYS.iter().find_map(|key| {
            let name = chain.strip_suffix(key)?.strip_suffix('_')?;
            (!name.is_empty()).then(|| ("chains".to_owned(), Some(name.to_owned()), (*key).to_owned()))
        });
    }
    defaults.iter().find_map(|(section, keys)| {
        let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
        keys.as_table()?
            .contains_key(key)
            .then(|| (section.clone(), None, key.to_owned()))
    })
}

/// An env value as TOML: numbers, booleans and arrays keep their type; anything else is a string.
fn env_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Refuses `[notifications.<sender>]` secrets given inline (in the file or by env): they
/// belong in 0600 files. The message names the key, never the value.
fn refuse_inline_secrets(table: &toml::Table) -> Result<(), ConfigError> {
    let Some(notifications) = table.get("notifications").and_then(toml::Value::as_table) else {
        return Ok(());
    };
    for (sender, inline, file_key) in INLINE_SECRETS {
        let given = notifications
            .get(sender)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(inline));
        if given {
            return Err(ConfigError::Invalid(format!(
                "[notifications.{sender}] {inline}: secrets are never inline values\nfix: write it to a file only you can read (chmod 600) and set {file_key} = \"<path>\""
            )));
        }
    }
    Ok(())
}

impl NotificationsConfig {
    /// Makes relative secret-file paths relative to `dir` (the data dir).
    fn resolve_paths(&mut self, dir: &Path) {
        let files = [
            self.webhook.as_mut().and_then(|w| w.secret_file.as_mut()),
            self.telegram.as_mut().and_then(|t| t.bot_token_file.as_mut()),
            self.slack.as_mut().and_then(|s| s.webhook_url_file.as_mut()),
            self.ntfy.as_mut().and_then(|n| n.token_file.as_mut()),
        ];
        for file in files.into_iter().flatten() {
            if file.is_relative() && !file.as_os_str().is_empty() {
                *file = dir.join(&*file);
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |what: &str| Err(ConfigError::Invalid(format!("[notifications] {what}")));
        if self.queue_capacity == 0 || self.queue_capacity > 100_000 {
            return bad("queue_capacity must be in 1..=100000");
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            return bad("timeout_ms must be in 1..=60000");
        }
        if self.max_attempts == 0 || self.max_attempts > 20 {
            return bad("max_attempts must be in 1..=20");
        }
        if self.backoff_max_ms > 3_600_000 || self.backoff_initial_ms > self.backoff_max_ms {
            return bad("backoff_initial_ms must not exceed backoff_max_ms (at most 3600000)");
        }
        let missing = |sender: &str, key: &str| {
            Err(ConfigError::Invalid(format!(
                "[notifications.{sender}] {key} is required (a file only you can read, chmod 600)"
            )))
        };
        let given = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| !p.as_os_str().is_empty());
        if let Some(w) = &self.webhook {
            if !is_http_url(&w.url) {
                return bad("webhook.url must be an http:// or https:// URL");
            }
            if !given(&w.secret_file) {
                return missing("webhook", "secret_file");
            }
        }
        if let Some(t) = &self.telegram {
            if !is_http_url(&t.base_url) {
                return bad("telegram.base_url must be an http:// or https:// URL");
            }
            if !given(&t.bot_token_file) {
                return missing("telegram", "bot_token_file");
            }
            if t.chat_id.trim().is_empty() || t.chat_id.len() > 64 || t.chat_id.chars().any(char::is_control) {
                return bad("telegram.chat_id is required: a chat id like -1001234567890 or @channel");
            }
        }
        if let Some(s) = &self.slack
            && !given(&s.webhook_url_file)
        {
            return missing("slack", "webhook_url_file");
        }
        if self.daily_summary_hour_utc > 23 {
            return bad("daily_summary_hour_utc must be in 0..=23");
        }
        if let Some(n) = &self.ntfy {
            if !is_secure_or_loopback(&n.base_url) {
                return bad(
                    "ntfy.base_url must be https://, or http:// to a loopback address (the topic and token must not cross a network in clear)",
                );
            }
            let topic_ok = (1..=64).contains(&n.topic.len())
                && n.topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !topic_ok {
                return bad("ntfy.topic must be 1-64 characters of A-Z, a-z, 0-9, _ and -");
            }
            if n.token_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                return missing("ntfy", "token_file");
            }
            for (event, priority) in &n.priority {
                if !EVENT_TYPES.contains(&event.as_str()) {
                    return bad(&format!(
                        "ntfy.priority: unknown event type {event:?} (one of {})",
                        EVENT_TYPES.join(", ")
                    ));
                }
                if !(1..=5).contains(priority) {
                    return bad("ntfy.priority values must be in 1..=5");
                }
            }
        }
        Ok(())
    }
}

/// Where a secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env,
}

/// Reads a secret from `<NAME>_FILE` (wins) or `<NAME>`; both set is an error. The plain
/// env form returns a warning, because env is visible to `docker inspect` and
/// `/proc/*/environ`.
pub fn secret_from_env(name: &str) -> Result<Option<(Passphrase, SecretSource, Option<String>)>, ConfigError> {
    let file_var = format!("{name}_FILE");
    let file = std::env::var_os(&file_var).filter(|v| !v.is_empty());
    let plain = std::env::var(name).ok().filter(|v| !v.is_empty());
    match (file, plain) {
        (Some(_), Some(_)) => Err(ConfigError::BothSecretForms(name.to_owned())),
        (Some(path), None) => {
            let path = PathBuf::from(path);
            let secret = read_secret_file(&path)?;
            Ok(Some((secret, SecretSource::File(path), None)))
        }
        (None, Some(value)) => Ok(Some((
            Passphrase::from(value),
            SecretSource::Env,
            Some(format!(
                "{name} is set in the environment, which `docker inspect` and /proc/*/environ expose; prefer {file_var}"
            )),
        ))),
        (None, None) => Ok(None),
    }
}

/// Reads a one-line secret file, dropping the trailing newline editors and `echo` add.
pub fn read_secret_file(path: &Path) -> Result<Passphrase, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(ConfigError::Read {
            path: path.to_owned(),
            reason: "file is empty".into(),
        });
    }
    Ok(Passphrase::from(trimmed.to_owned()))
}

/// Like [`read_secret_file`], but first refuses a file that group or others can access
/// (for secrets named in `config.toml`, e.g. `[notifications.*] *_file`).
pub fn read_private_secret_file(path: &Path) -> Result<Passphrase, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        // Not `Permissions`: `doctor --fix` does not know files named in the config.
        return Err(ConfigError::Invalid(format!(
            "{} is accessible by group or others (mode {mode:04o})\nfix: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    read_secret_file(path)
}

/// The data directory: `--data-dir` > `BURSAR_DATA_DIR` > `~/.bursar`.
pub fn data_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os("BURSAR_DATA_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".bursar")
    })
}

/// A path bursar checks, with the mode it must not exceed.
pub struct Guarded {
    pub path: PathBuf,
    pub want: u32,
    /// Mode bits that must be clear.
    pub forbid: u32,
}

/// The paths under the data dir that must not be group/world accessible.
pub fn guarded_paths(data_dir: &Path) -> Vec<Guarded> {
    vec![
        Guarded {
            path: data_dir.to_owned(),
            want: 0o700,
            forbid: 0o077,
        },
        Guarded {
            path: data_dir.join(STORE_DIR),
            want: 0o700,
            forbid: 0o077,
        },
        Guarded {
            path: data_dir.join(RECOVERY_KEY_FILE),
            want: 0o600,
            forbid: 0o077,
        },
        Guarded {
            path: data_dir.join(RECOVERY_KEY_STAGED_FILE),
            want: 0o600,
            forbid: 0o077,
        },
        // Not secret, but whoever can write it chooses the RPC endpoints.
        Guarded {
            path: data_dir.join(CONFIG_FILE),
            want: 0o600,
            forbid: 0o022,
        },
    ]
}

/// Every file (0600) and directory (0700) of the store under `data_dir`: sled creates its
/// files with the process umask, so an old or foreign-made store may hold 0644 files.
pub fn store_paths(data_dir: &Path) -> Vec<Guarded> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.join(STORE_DIR)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // symlink_metadata: never follow a link out of the store.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path.clone());
                out.push(Guarded {
                    path,
                    want: 0o700,
                    forbid: 0o077,
                });
            } else if meta.is_file() {
                out.push(Guarded {
                    path,
                    want: 0o600,
                    forbid: 0o077,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Makes every file of the store 0600 and every directory 0700 (`bursar start` runs it: sled
/// made its files with the umask of whoever ran an older bursar; new ones are made under the
/// CLI's umask 077). Returns how many paths it changed.
pub fn tighten_store_permissions(data_dir: &Path) -> std::io::Result<usize> {
    let mut changed = 0;
    for g in guarded_paths(data_dir)
        .into_iter()
        .filter(|g| g.path == data_dir.join(STORE_DIR))
        .chain(store_paths(data_dir))
    {
        let mode = std::fs::symlink_metadata(&g.path)?.permissions().mode() & 0o777;
        if mode & g.forbid != 0 {
            std::fs::set_permissions(&g.path, std::fs::Permissions::from_mode(g.want))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Refuses a data dir whose secrets are readable by others. Missing paths are fine.
pub fn check_permissions(data_dir: &Path) -> Result<(), ConfigError> {
    for g in guarded_paths(data_dir) {
        if let Ok(meta) = std::fs::metadata(&g.path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & g.forbid != 0 {
                return Err(ConfigError::Permissions {
                    path: g.path,
                    mode,
                    want: g.want,
                });
            }
        }
    }
    Ok(())
}

/// Writes a new file with mode 0600 from creation on (no window where it is readable),
/// fsyncs it, and fsyncs the directory. Fails if the file exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `<data>/recovery.key`: the master password in a file, and its crash-safe replacement.
///
/// `set-master` keeping the file must leave, at every instant, one file that opens the store:
/// it stages the new password in `recovery.key.new` (0600, fsynced) before the store commit,
/// and renames it over `recovery.key` after. A crash between the two leaves both files;
/// `bursar start` then tries `recovery.key`, then the staged file, and promotes or discards
/// the staged one by which of them opened the store.
pub struct RecoveryKey {
    pub path: PathBuf,
    pub staged: PathBuf,
}

impl RecoveryKey {
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(RECOVERY_KEY_FILE),
            staged: data_dir.join(RECOVERY_KEY_STAGED_FILE),
        }
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Writes the staged file (0600 from creation, fsynced file and directory), replacing a
    /// leftover from an earlier interrupted change.
    pub fn stage(&self, password: &Passphrase) -> std::io::Result<()> {
        use secrecy::ExposeSecret;
        self.discard_staged()?;
        write_private_file(&self.staged, password.expose_secret().as_bytes())
    }

    /// Renames the staged file over `recovery.key` (atomic) and fsyncs the directory.
    pub fn promote_staged(&self) -> std::io::Result<()> {
        std::fs::rename(&self.staged, &self.path)?;
        sync_parent(&self.path)
    }

    /// Removes the staged file, if any.
    pub fn discard_staged(&self) -> std::io::Result<()> {
        remove_synced(&self.staged)
    }

    /// Removes `recovery.key` (and a staged one), if any.
    pub fn remove(&self) -> std::io::Result<()> {
        remove_synced(&self.path)?;
        remove_synced(&self.staged)
    }
}

fn remove_synced(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Creates the data dir (0700) if missing.
pub fn create_data_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<(Config, Vec<String>), ConfigError> {
        Config::from_parts(
            Path::new("config.toml"),
            text,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn optional_keys_have_overrides_and_metrics_access_is_checked() {
        let (cfg, warnings) = load(
            "",
            &[
                ("BURSAR_OWNER_DOMAIN", "wallet.example:443"),
                ("BURSAR_METRICS_ACCESS", "token"),
                ("BURSAR_METRICS_TOKEN_FILE", "metrics.token"),
                ("BURSAR_AUTO_PROVISION", "true"),
                ("BURSAR_BACKUP_PASSPHRASE_FILE", "/run/secrets/backup"),
            ],
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cfg.owner_domain(), "wallet.example:443");
        assert_eq!(cfg.metrics.access, MetricsAccess::Token);
        // Relative to the data dir, like the notification secrets.
        assert_eq!(cfg.metrics.token_file.as_deref(), Some(Path::new("metrics.token")));
        let err = load("[metrics]\naccess = \"token\"", &[]).unwrap_err().to_string();
        assert!(err.contains("token_file"), "{err}");
        let err = load("[metrics]\naccess = \"public\"", &[]).unwrap_err().to_string();
        assert!(err.contains("access"), "{err}");
    }

    #[test]
    fn env_overrides_sections_and_chains() {
        let (cfg, warnings) = load(
            &Config::initial_file(),
            &[
                ("BURSAR_SERVER_BIND", "127.0.0.1:3999"),
                ("BURSAR_KEYSTORE_ARGON2_ITERATIONS", "4"),
                ("BURSAR_CHAINS_ANVIL_RPC_URL", "http://127.0.0.1:9999"),
                ("BURSAR_CHAINS_MY_L2_KIND", "evm"),
                ("BURSAR_CHAINS_MY_L2_RPC_URL", "https://l2.example"),
                ("BURSAR_CHAINS_MY_L2_CHAIN_ID", "8453"),
                ("BURSAR_SERVER_BND", "typo"),
                ("BURSAR_DATA_DIR", "/ignored"),
            ],
        )
        .unwrap();
        assert_eq!(cfg.server.bind.port(), 3999);
        assert_eq!(cfg.keystore.argon2_iterations, 4);
        assert_eq!(cfg.chains["anvil"].rpc_url, "http://127.0.0.1:9999");
        assert_eq!(cfg.chains["my_l2"].chain_id, Some(8453));
        assert_eq!(
            warnings,
            vec!["ignoring unknown configuration variable BURSAR_SERVER_BND".to_owned()]
        );
    }

    #[test]
    fn invalid_configs_are_refused_with_the_reason() {
        let cases = [
            ("[server]\nbnd = 1", "unknown field"),
            (
                "[chains.x]\nkind = \"evm\"\nrpc_url = \"http://a\"",
                "chain_id is required",
            ),
            (
                "[chains.x]\nkind = \"btc\"\nrpc_url = \"http://a\"",
                "unknown chain kind",
            ),
            (
                "[chains.X]\nkind = \"evm\"\nrpc_url = \"http://a\"\nchain_id = 1",
                "chain names",
            ),
            (
                "[chains.x]\nkind = \"evm\"\nrpc_url = \"ftp://a\"\nchain_id = 1",
                "rpc_url",
            ),
            ("[keystore]\nargon2_memory_kib = 4294967295", "out of bounds"),
            ("[log]\nformat = \"xml\"", "format"),
            (
                "[server]\nheader_read_timeout_seconds = 0",
                "header_read_timeout_seconds must be in 1..=3600",
            ),
            ("[server]\nrequest_timeout_seconds = 86400", "request_timeout_seconds"),
            ("[server]\nmax_connections = 1", "max_connections must be in 8..="),
            (
                "[server]\nmax_mcp_sessions = 10\nmax_mcp_sessions_per_session = 11",
                "max_mcp_sessions_per_session must be in 1..=10",
            ),
            ("[server]\nmcp_session_idle_seconds = 0", "mcp_session_idle_seconds"),
            (
                "[server]\nrequest_timeout_seconds = 10\n[transfers]\nconfirm_wait_seconds = 10",
                "longer than [transfers] confirm_wait_seconds",
            ),
            ("not toml at all", "invalid config"),
        ];
        for (text, needle) in cases {
            let err = load(text, &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let err = load("", &[("BURSAR_SERVER_BIND", "nonsense")]).unwrap_err().to_string();
        assert!(err.contains("invalid"), "{err}");
    }

    #[test]
    fn price_sources_bounds_and_limits_are_checked_at_load() {
        let http = |url: &str| format!("[prices.http]\nbase_url = \"{url}\"\n[prices.http.ids]\nETH = \"ethereum\"\n");
        for ok in [
            "https://api.coingecko.com/api/v3",
            "http://127.0.0.1:8080",
            "http://localhost:9/x",
            "http://[::1]:8080",
        ] {
            load(&http(ok), &[]).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for remote in [
            "http://prices.example",
            "http://10.0.0.2:80",
            "ftp://127.0.0.1",
            "https://",
        ] {
            let err = load(&http(remote), &[]).unwrap_err().to_string();
            assert!(err.contains("https://"), "{remote}: {err}");
        }
        let cases = [
            ("[prices.native]\nETH = \"0\"", "greater than zero"),
            ("[prices.native]\nETH = \"-3\"", "ETH"),
            (
                "[prices.bounds]\nETH = { min = \"10\", max = \"1\" }",
                "min is above max",
            ),
            ("[prices.bounds]\nETH = {}", "give min, max or both"),
            ("[prices.bounds]\nETH = { min = \"0\" }", "greater than zero"),
            (
                "[prices.native]\nETH = \"50\"\n[prices.bounds]\neth = { min = \"100\" }",
                "outside its [prices.bounds]",
            ),
            ("[prices]\nmax_change_ratio = 1", "max_change_ratio"),
            ("[transfers]\nmax_open_per_wallet = 0", "max_open_per_wallet"),
            ("[transfers]\nretain_denied_days = 40000", "retain_denied_days"),
        ];
        for (text, needle) in cases {
            let err = load(text, &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let (cfg, _) = load(
            "[prices]\nmax_change_ratio = 0\n[prices.bounds]\nETH = { min = \"100\", max = \"100000\" }",
            &[("BURSAR_TRANSFERS_RETAIN_DENIED_DAYS", "30")],
        )
        .unwrap();
        assert_eq!(cfg.prices.bounds["ETH"].max.as_deref(), Some("100000"));
        assert_eq!((cfg.prices.max_change_ratio, cfg.transfers.retain_denied_days), (0, 30));
    }

    #[test]
    fn an_unspecified_bind_address_is_reached_and_signed_for_on_loopback() {
        for bind in ["0.0.0.0:3222", "[::]:3222"] {
            let (cfg, _) = load(&format!("[server]\nbind = \"{bind}\""), &[]).unwrap();
            assert_eq!(cfg.owner_domain(), "127.0.0.1:3222", "{bind}");
            assert_eq!(cfg.server.public_url(), "http://127.0.0.1:3222", "{bind}");
        }
        let (cfg, _) = load("[server]\nbind = \"192.168.1.5:3100\"", &[]).unwrap();
        assert_eq!(cfg.owner_domain(), "192.168.1.5:3100");
        let (cfg, _) = load("[server]\nbind = \"[::1]:3100\"", &[]).unwrap();
        assert_eq!(cfg.owner_domain(), "[::1]:3100");
        let (cfg, _) = load(
            "[server]\nbind = \"0.0.0.0:3100\"\n[owner]\ndomain = \"wallet.example\"",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.owner_domain(), "wallet.example");
    }

    #[test]
    fn recovery_key_is_staged_then_promoted_or_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let rk = RecoveryKey::in_dir(dir.path());
        write_private_file(&rk.path, b"old password 123").unwrap();
        rk.stage(&Passphrase::from("new password 456".to_owned())).unwrap();
        assert_eq!(
            std::fs::metadata(&rk.staged).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A leftover staged file is replaced, not an error.
        rk.stage(&Passphrase::from("newer password 789".to_owned())).unwrap();
        rk.promote_staged().unwrap();
        assert_eq!(std::fs::read_to_string(&rk.path).unwrap(), "newer password 789");
        assert!(!rk.staged.exists());
        rk.stage(&Passphrase::from("never committed 0".to_owned())).unwrap();
        rk.discard_staged().unwrap();
        assert_eq!(std::fs::read_to_string(&rk.path).unwrap(), "newer password 789");
        rk.remove().unwrap();
        assert!(!rk.exists());
        rk.remove().unwrap();
    }

    #[test]
    fn loose_store_files_are_found_and_tightened() {
        let dir = tempfile::tempdir().unwrap();
        create_data_dir(dir.path()).unwrap();
        let store = dir.path().join(STORE_DIR);
        std::fs::create_dir_all(store.join("blobs")).unwrap();
        for (path, mode) in [
            (store.join("db"), 0o644),
            (store.join("blobs/1"), 0o640),
            (store.join("conf"), 0o600),
        ] {
            std::fs::write(&path, b"x").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(store.join("blobs"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
        let loose = |d: &Path| {
            store_paths(d)
                .into_iter()
                .filter(|g| std::fs::metadata(&g.path).unwrap().permissions().mode() & g.forbid != 0)
                .count()
        };
        assert_eq!(store_paths(dir.path()).len(), 4);
        assert_eq!(loose(dir.path()), 3);
        assert_eq!(tighten_store_permissions(dir.path()).unwrap(), 3);
        assert_eq!(loose(dir.path()), 0);
        assert_eq!(tighten_store_permissions(dir.path()).unwrap(), 0);
    }

    #[test]
    fn non_loopback_bind_warns() {
        let (_, warnings) = load("[server]\nbind = \"0.0.0.0:3100\"", &[]).unwrap();
        assert!(warnings[0].contains("not loopback"));
    }

    #[test]
    fn permissions_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        create_data_dir(dir.path()).unwrap();
        check_permissions(dir.path()).unwrap();
        write_private_file(&dir.path().join(RECOVERY_KEY_FILE), b"x").unwrap();
        check_permissions(dir.path()).unwrap();
        std::fs::set_permissions(
            dir.path().join(RECOVERY_KEY_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let err = check_permissions(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("doctor --fix"), "{err}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            check_permissions(dir.path())
                .unwrap_err()
                .to_string()
                .contains("chmod 700")
        );
    }
}
