//! Session tokens: HS256 JWTs, each bound to one session record and through it to one
//! wallet. A token is valid only while its signature, audience, expiry, the session's
//! absolute lifetime, its revocation state and the stored hash of the *current* token all
//! agree — so renewing or revoking kills the old token at once.
//!
//! Pure: time is passed in; the store is the caller's.

use crate::domain::{SessionId, WalletId};
use crate::secret::ct_eq;
use crate::store::records::SessionRecord;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Token claims. `scope` is reserved for per-session caveats (allowed tools, budget, tier
/// ceiling); absent today, it already travels inside the signature when present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub jti: String,
    /// The session id.
    pub sub: String,
    /// The wallet id.
    pub wid: String,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("session token is malformed or its signature does not verify")]
    Invalid,
    #[error("session token was issued for another bursar daemon")]
    WrongAudience,
    #[error("session token has expired; renew it before expiry or ask the operator for a new session")]
    Expired,
    #[error("session has reached its absolute lifetime; ask the operator for a new session")]
    LifetimeExceeded,
    #[error("session has been revoked")]
    Revoked,
    #[error("session token has been replaced by a renewal; use the newest token")]
    Superseded,
    #[error("session has used all of its {0} renewals")]
    RenewalsExhausted(u32),
}

/// The HS256 keys and the daemon's audience.
pub struct SessionKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    audience: String,
}

/// A freshly minted token. The token string goes to the client once and is never stored.
pub struct Minted {
    pub token: String,
    pub jti: String,
    pub token_hash: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Minted {{ jti: {}, token: [REDACTED] }}", self.jti)
    }
}

impl SessionKeys {
    pub fn new(secret: &[u8], daemon_id: &str) -> Self {
        let audience = format!("bursar:{daemon_id}");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[&audience]);
        validation.set_issuer(&[&audience]);
        // Expiry is checked by `verify` against the caller's clock, with no leeway.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            audience,
        }
    }

    pub fn mint(&self, session: SessionId, wallet: WalletId, now: i64, expires_at: i64) -> Minted {
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            jti: jti.clone(),
            sub: session.to_string(),
            wid: wallet.to_string(),
            aud: self.audience.clone(),
            iss: self.audience.clone(),
            iat: now,
            exp: expires_at,
            scope: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding cannot fail");
        let token_hash = token_hash(&token);
        Minted { token, jti, token_hash }
    }

    /// Checks the signature and audience and returns the claims. The record checks follow
    /// in [`verify_record`] once the caller has loaded the session.
    pub fn decode(&self, token: &str) -> Result<(Claims, SessionId), SessionError> {
        // Cheap shape check before any crypto: three base64url parts, bounded length.
        if token.len() > 2048 || token.split('.').count() != 3 {
            return Err(SessionError::Invalid);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| match err
            .kind()
        {
            jsonwebtoken::errors::ErrorKind::InvalidAudience | jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                SessionError::WrongAudience
            }
            _ => SessionError::Invalid,
        })?;
        let id = data.claims.sub.parse().map_err(|_| SessionError::Invalid)?;
        Ok((data.claims, id))
    }
}

/// The record-side checks, in the order that gives the most useful error.
pub fn verify_record(record: &SessionRecord, claims: &Claims, token: &str, now: i64) -> Result<(), SessionError> {
    if record.wallet_id.to_string() != claims.wid {
        return Err(SessionError::Invalid);
    }
    if record.revoked_at.is_some() {
        return Err(SessionError::Revoked);
    }
    if !ct_eq(token_hash(token).as_bytes(), record.token_hash.as_bytes()) || record.jti != claims.jti {
        return Err(SessionError::Superseded);
    }
    if now >= record.absolute_expires_at {
        return Err(SessionError::LifetimeExceeded);
    }
    if now >= claims.exp || now >= record.expires_at {
        return Err(SessionError::Expired);
    }
    Ok(())
}

/// The expiry of the next token: `now + ttl`, never past the absolute lifetime.
pub fn next_expiry(record: &SessionRecord, now: i64) -> i64 {
    now.saturating_add(i64::try_from(record.ttl_seconds).unwrap_or(i64::MAX))
        .min(record.absolute_expires_at)
}

/// Whether `record` may be renewed now.
pub fn check_renewable(record: &SessionRecord) -> Result<(), SessionError> {
    if record.renewals >= record.max_renewals {
        return Err(SessionError::RenewalsExhausted(record.max_renewals));
    }
    Ok(())
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::RECORD_VERSION;

    fn setup(now: i64) -> (SessionKeys, SessionRecord, String) {
        let keys = SessionKeys::new(&[9u8; 32], "daemon-a");
        let (sid, wid) = (SessionId::new(), WalletId::new());
        let minted = keys.mint(sid, wid, now, now + 60);
        let record = SessionRecord {
            v: RECORD_VERSION,
            id: sid,
            wallet_id: wid,
            created_at: now,
            expires_at: now + 60,
            absolute_expires_at: now + 600,
            ttl_seconds: 60,
            max_renewals: 2,
            renewals: 0,
            revoked_at: None,
            token_hash: minted.token_hash,
            jti: minted.jti,
        };
        (keys, record, minted.token)
    }

    fn check(keys: &SessionKeys, record: &SessionRecord, token: &str, now: i64) -> Result<(), SessionError> {
        let (claims, _) = keys.decode(token)?;
        verify_record(record, &claims, token, now)
    }

    #[test]
    fn an_overlong_token_is_refused_before_any_crypto() {
        // Correctly signed, but past the 2048-byte bound (a very long audience): refused on
        // its shape alone.
        let keys = SessionKeys::new(&[9u8; 32], &"d".repeat(1_000));
        let minted = keys.mint(SessionId::new(), WalletId::new(), 1_000, 1_060);
        assert!(minted.token.len() > 2048, "{}", minted.token.len());
        assert_eq!(keys.decode(&minted.token).err(), Some(SessionError::Invalid));
        let (keys, _, token) = setup(1_000);
        assert!(keys.decode(&token).is_ok());
        assert_eq!(keys.decode(&format!("{token}.x")).err(), Some(SessionError::Invalid));
    }

    #[test]
    fn either_expiry_ends_the_token() {
        let (keys, record, token) = setup(1_000);
        // The record's expiry (moved earlier) ends it before the token's own `exp`...
        let shortened = SessionRecord {
            expires_at: 1_005,
            ..record.clone()
        };
        assert_eq!(check(&keys, &shortened, &token, 1_006), Err(SessionError::Expired));
        // ... and the token's `exp` ends it even when the record would allow more.
        let lengthened = SessionRecord {
            expires_at: 1_500,
            ..record
        };
        assert_eq!(check(&keys, &lengthened, &token, 1_061), Err(SessionError::Expired));
        assert_eq!(check(&keys, &lengthened, &token, 1_059), Ok(()));
    }

    #[test]
    fn debug_of_a_minted_token_hides_it() {
        let keys = SessionKeys::new(&[9u8; 32], "daemon-a");
        let minted = keys.mint(SessionId::new(), WalletId::new(), 1_000, 1_060);
        let shown = format!("{minted:?}");
        assert!(
            !shown.contains(&minted.token) && shown.contains("[REDACTED]"),
            "{shown}"
        );
    }

    #[test]
    fn valid_token_passes_and_each_defect_is_named() {
        let (keys, record, token) = setup(1_000);
        assert_eq!(check(&keys, &record, &token, 1_001), Ok(()));
        assert_eq!(check(&keys, &record, &token, 1_060), Err(SessionError::Expired));
        let revoked = SessionRecord {
            revoked_at: Some(1_010),
            ..record.clone()
        };
        assert_eq!(check(&keys, &revoked, &token, 1_011), Err(SessionError::Revoked));
        let renewed = SessionRecord {
            token_hash: token_hash("other"),
            ..record.clone()
        };
        assert_eq!(check(&keys, &renewed, &token, 1_011), Err(SessionError::Superseded));
        let lifetime = SessionRecord {
            absolute_expires_at: 1_005,
            ..record.clone()
        };
        assert_eq!(
            check(&keys, &lifetime, &token, 1_006),
            Err(SessionError::LifetimeExceeded)
        );
        let other_wallet = SessionRecord {
            wallet_id: WalletId::new(),
            ..record.clone()
        };
        assert_eq!(check(&keys, &other_wallet, &token, 1_001), Err(SessionError::Invalid));
    }

    #[test]
    fn foreign_audience_and_tampering_are_rejected() {
        let (_, record, token) = setup(1_000);
        let other_daemon = SessionKeys::new(&[9u8; 32], "daemon-b");
        assert_eq!(
            check(&other_daemon, &record, &token, 1_001),
            Err(SessionError::WrongAudience)
        );
        let other_secret = SessionKeys::new(&[8u8; 32], "daemon-a");
        assert_eq!(check(&other_secret, &record, &token, 1_001), Err(SessionError::Invalid));

        let keys = SessionKeys::new(&[9u8; 32], "daemon-a");
        // Flip a character in each part.
        for part in 0..3 {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let mut chars: Vec<char> = parts[part].chars().collect();
            chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
            parts[part] = chars.into_iter().collect();
            let forged = parts.join(".");
            assert!(check(&keys, &record, &forged, 1_001).is_err(), "part {part}");
        }
        // alg=none with the same claims.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = token.split('.').nth(1).unwrap();
        let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), payload);
        assert_eq!(keys.decode(&none).err(), Some(SessionError::Invalid));
        for junk in ["", "a.b", "a.b.c", &"x".repeat(5000)] {
            assert_eq!(keys.decode(junk).err(), Some(SessionError::Invalid));
        }
    }

    #[test]
    fn renewal_is_bounded_by_count_and_lifetime() {
        let (_, mut record, _) = setup(1_000);
        assert_eq!(next_expiry(&record, 1_100), 1_160);
        assert_eq!(next_expiry(&record, 1_580), 1_600);
        record.renewals = 2;
        assert_eq!(check_renewable(&record), Err(SessionError::RenewalsExhausted(2)));
    }
}
