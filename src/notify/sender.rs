//! The four senders and one delivery attempt each. The only file of `notify` that touches a
//! secret (`expose_secret()` is called here and nowhere else in the module): the webhook's
//! HMAC key, the Telegram bot token, the Slack webhook URL, the ntfy access token. Errors are a closed set of
//! words ([`AttemptError`]) built without the request URL, which may carry a credential.

use super::Envelope;
use crate::config::{ConfigError, NotificationsConfig, read_private_secret_file};
use crate::secret::Passphrase;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

/// Where notifications go. `Debug` names the kind only.
pub(super) enum Sender {
    Webhook {
        url: String,
        secret: Passphrase,
    },
    Telegram {
        base_url: String,
        token: Passphrase,
        chat_id: String,
    },
    Slack {
        url: Passphrase,
    },
    Ntfy {
        base_url: String,
        topic: String,
        token: Option<Passphrase>,
        priority: std::collections::BTreeMap<String, u8>,
    },
}

/// ntfy shows at most three action buttons per notification.
const NTFY_MAX_ACTIONS: usize = 3;

/// ntfy priority (1 min … 5 max) when `[notifications.ntfy] priority` does not name the type.
fn default_priority(event: &str) -> u8 {
    match event {
        "approval_pending" | "kill_switch" | "auto_stop" => 5,
        "transfer_delayed" | "auth_failure_burst" => 4,
        "daily_summary" => 2,
        _ => 3,
    }
}

/// Whether Telegram accepts URL buttons to `public_url`: it refuses the whole message
/// (`BUTTON_URL_INVALID`) for `localhost` and loopback addresses, so a daemon without a
/// reachable `server.public_url` sends the text (with its link) and no keyboard.
pub(super) fn telegram_buttons_ok(public_url: &str) -> bool {
    let Ok(uri) = public_url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(uri.scheme_str(), Some("https" | "http"))
        && !host.eq_ignore_ascii_case("localhost")
        && !host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sender({})", self.kind())
    }
}

/// Why one attempt failed. No variant carries a URL, a body or a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttemptError {
    Timeout,
    Connect,
    /// The receiver answered with this status.
    Status(u16),
    /// Anything else reqwest reports (TLS, protocol, body).
    Request,
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptError::Timeout => f.write_str("timeout"),
            AttemptError::Connect => f.write_str("connection failed"),
            AttemptError::Status(code) => write!(f, "status {code}"),
            AttemptError::Request => f.write_str("request failed"),
        }
    }
}

impl AttemptError {
    /// Whether another attempt may succeed: network trouble, 5xx, 408 and 429 may pass;
    /// any other 4xx is the configuration (bad chat id, revoked hook) and will not.
    pub(super) fn is_retryable(self) -> bool {
        match self {
            AttemptError::Status(code) => code >= 500 || code == 408 || code == 429,
            AttemptError::Timeout | AttemptError::Connect | AttemptError::Request => true,
        }
    }
}

impl Sender {
    /// Every configured sender, reading its secret file (refused unless 0600-like).
    pub(super) fn from_config(cfg: &NotificationsConfig) -> Result<Vec<Sender>, ConfigError> {
        let required = |path: &Option<std::path::PathBuf>, what: &str| {
            path.as_deref()
                .ok_or_else(|| ConfigError::Invalid(format!("[notifications] {what} is required")))
                .and_then(read_private_secret_file)
        };
        let mut senders = Vec::new();
        if let Some(w) = &cfg.webhook {
            senders.push(Sender::Webhook {
                url: w.url.clone(),
                secret: required(&w.secret_file, "webhook.secret_file")?,
            });
        }
        if let Some(t) = &cfg.telegram {
            let token = required(&t.bot_token_file, "telegram.bot_token_file")?;
            // It goes into the URL path: a stray `/`, `?` or space would send it elsewhere.
            let shaped = token
                .expose_secret()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
            if !shaped {
                return Err(ConfigError::Invalid(
                    "[notifications.telegram] bot_token_file does not hold a bot token (like 123456:AbC-dEf_…)".into(),
                ));
            }
            senders.push(Sender::Telegram {
                base_url: t.base_url.trim_end_matches('/').to_owned(),
                token,
                chat_id: t.chat_id.trim().to_owned(),
            });
        }
        if let Some(s) = &cfg.slack {
            let url = required(&s.webhook_url_file, "slack.webhook_url_file")?;
            let text = url.expose_secret();
            if !(text.starts_with("https://") || text.starts_with("http://")) {
                return Err(ConfigError::Invalid(
                    "[notifications.slack] webhook_url_file must hold an http(s):// URL".into(),
                ));
            }
            senders.push(Sender::Slack { url });
        }
        if let Some(n) = &cfg.ntfy {
            let token = match &n.token_file {
                Some(path) => {
                    let token = read_private_secret_file(path)?;
                    // It goes into a header: printable ASCII without spaces only.
                    if token.expose_secret().is_empty() || !token.expose_secret().bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(ConfigError::Invalid(
                            "[notifications.ntfy] token_file does not hold an access token (printable characters, no spaces)"
                                .into(),
                        ));
                    }
                    Some(token)
                }
                None => None,
            };
            senders.push(Sender::Ntfy {
                base_url: n.base_url.trim_end_matches('/').to_owned(),
                topic: n.topic.clone(),
                token,
                priority: n.priority.clone(),
            });
        }
        Ok(senders)
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Sender::Webhook { .. } => "webhook",
            Sender::Telegram { .. } => "telegram",
            Sender::Slack { .. } => "slack",
            Sender::Ntfy { .. } => "ntfy",
        }
    }

    /// Whether this sender's `daily_summary` is on in `cfg`.
    pub(super) fn wants_daily_summary(&self, cfg: &NotificationsConfig) -> bool {
        match self {
            Sender::Webhook { .. } => cfg.webhook.as_ref().is_some_and(|c| c.daily_summary),
            Sender::Telegram { .. } => cfg.telegram.as_ref().is_some_and(|c| c.daily_summary),
            Sender::Slack { .. } => cfg.slack.as_ref().is_some_and(|c| c.daily_summary),
            Sender::Ntfy { .. } => cfg.ntfy.as_ref().is_some_and(|c| c.daily_summary),
        }
    }

    /// One attempt. The client carries the per-attempt timeout and follows no redirect.
    pub(super) async fn attempt(
        &self,
        client: &reqwest::Client,
        envelope: &Envelope,
        public_url: &str,
    ) -> Result<(), AttemptError> {
        let request = match self {
            Sender::Webhook { url, secret } => {
                let body = serde_json::to_vec(envelope).expect("events serialise");
                // Fresh per attempt: receivers may refuse old timestamps (replay window).
                let timestamp = super::now().to_string();
                let signature = sign(secret.expose_secret().as_bytes(), &timestamp, &body);
                client
                    .post(url.as_str())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Bursar-Timestamp", timestamp)
                    .header("X-Bursar-Signature", format!("sha256={signature}"))
                    .header("X-Bursar-Event", envelope.event.kind())
                    .header("X-Bursar-Delivery", envelope.id.as_str())
                    .body(body)
            }
            Sender::Telegram {
                base_url,
                token,
                chat_id,
            } => {
                // No parse_mode: plain text, so nothing in the event can become markup.
                let mut body = serde_json::json!({ "chat_id": chat_id, "text": envelope.event.text() });
                let links = envelope.event.links(public_url);
                if !links.is_empty() && telegram_buttons_ok(public_url) {
                    // URL buttons only, one per row: a callback button would let a tap act
                    // without the owner's signature. Each opens a page; the page asks the
                    // owner's wallet to sign.
                    let rows: Vec<serde_json::Value> = links
                        .iter()
                        .map(|l| serde_json::json!([{ "text": l.label, "url": l.url }]))
                        .collect();
                    body["reply_markup"] = serde_json::json!({ "inline_keyboard": rows });
                }
                client
                    .post(format!("{base_url}/bot{}/sendMessage", token.expose_secret()))
                    .json(&body)
            }
            Sender::Slack { url } => {
                let body = serde_json::json!({ "text": slack_escape(&envelope.event.text()) });
                client.post(url.expose_secret()).json(&body)
            }
            Sender::Ntfy {
                base_url,
                topic,
                token,
                priority,
            } => {
                let kind = envelope.event.kind();
                let text = envelope.event.text();
                // The first line is the title; the facts follow, plain text (no `markdown`).
                let (title, message) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                let links = envelope.event.links(public_url);
                let actions: Vec<serde_json::Value> = links
                    .iter()
                    .take(NTFY_MAX_ACTIONS)
                    .map(|l| serde_json::json!({ "action": "view", "label": l.label, "url": l.url }))
                    .collect();
                let message = if message.is_empty() { title } else { message };
                let mut body = serde_json::json!({
                    "topic": topic,
                    "title": title,
                    "message": message,
                    "priority": priority.get(kind).copied().unwrap_or_else(|| default_priority(kind)),
                    "tags": [kind],
                });
                if let Some(first) = links.first() {
                    body["click"] = serde_json::Value::String(first.url.clone());
                }
                if !actions.is_empty() {
                    body["actions"] = serde_json::Value::Array(actions);
                }
                let request = client.post(base_url.as_str()).json(&body);
                match token {
                    Some(t) => request.bearer_auth(t.expose_secret()),
                    None => request,
                }
            }
        };
        // reqwest's errors print the URL (a token for Telegram and Slack): classify, never show.
        let res = request.send().await.map_err(|err| {
            if err.is_timeout() {
                AttemptError::Timeout
            } else if err.is_connect() {
                AttemptError::Connect
            } else {
                AttemptError::Request
            }
        })?;
        let status = res.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Status(status.as_u16()))
        }
    }
}

/// `hex(HMAC-SHA256(secret, "<timestamp>.<body>"))`: what `X-Bursar-Signature` carries after
/// `sha256=`. A receiver recomputes it over the raw body and compares in constant time.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Slack reads `&`, `<` and `>` as control characters (links, `<!channel>` mentions): escape
/// them so no field can ping a channel or forge a link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_signature_matches_an_independent_implementation() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec-test",
        //   b"1700000000.{\"type\":\"kill_switch\"}", hashlib.sha256).hexdigest())'
        let body = br#"{"type":"kill_switch"}"#;
        assert_eq!(
            sign(b"whsec-test", "1700000000", body),
            "604eaefe7b43212cbbacc249c216cb7f503e328316937981d4ff90686d03aa34"
        );
        // Any change to the secret, the timestamp or the body changes it.
        let base = sign(b"whsec-test", "1700000000", body);
        assert_ne!(sign(b"whsec-tesT", "1700000000", body), base);
        assert_ne!(sign(b"whsec-test", "1700000001", body), base);
        assert_ne!(sign(b"whsec-test", "1700000000", br#"{"type":"kill_switcH"}"#), base);
    }

    #[test]
    fn slack_control_characters_are_escaped() {
        assert_eq!(
            slack_escape("<!channel> pay <https://evil|here> & more"),
            "&lt;!channel&gt; pay &lt;https://evil|here&gt; &amp; more"
        );
    }

    #[test]
    fn attempt_errors_never_carry_a_url_and_4xx_is_final() {
        let all = [
            AttemptError::Timeout,
            AttemptError::Connect,
            AttemptError::Request,
            AttemptError::Status(500),
            AttemptError::Status(404),
        ];
        for e in all {
            assert!(!e.to_string().contains("http"), "{e}");
        }
        assert!(AttemptError::Status(503).is_retryable());
        assert!(AttemptError::Status(429).is_retryable());
        assert!(!AttemptError::Status(400).is_retryable());
        assert!(!AttemptError::Status(404).is_retryable());
        assert!(AttemptError::Timeout.is_retryable());
    }

    #[test]
    fn debug_of_a_sender_names_only_its_kind() {
        let s = Sender::Telegram {
            base_url: "https://api.telegram.org".into(),
            token: Passphrase::from("123456:very-secret-bot-token".to_owned()),
            chat_id: "-100".into(),
        };
        assert_eq!(format!("{s:?}"), "Sender(telegram)");
    }
}
