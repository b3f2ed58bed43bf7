//! The three senders and one delivery attempt each. The only file of `notify` that touches a
//! secret (`expose_secret()` is called here and nowhere else in the module): the webhook's
//! HMAC key, the Telegram bot token, the Slack webhook URL. Errors are a closed set of
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
        Ok(senders)
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Sender::Webhook { .. } => "webhook",
            Sender::Telegram { .. } => "telegram",
            Sender::Slack { .. } => "slack",
        }
    }

    /// One attempt. The client carries the per-attempt timeout and follows no redirect.
    pub(super) async fn attempt(&self, client: &reqwest::Client, envelope: &Envelope) -> Result<(), AttemptError> {
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
                let body = serde_json::json!({ "chat_id": chat_id, "text": envelope.event.text() });
                client
                    .post(format!("{base_url}/bot{}/sendMessage", token.expose_secret()))
                    .json(&body)
            }
            Sender::Slack { url } => {
                let body = serde_json::json!({ "text": slack_escape(&envelope.event.text()) });
                client.post(url.expose_secret()).json(&body)
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
