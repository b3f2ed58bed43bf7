//! Secret types. Every secret bursar handles lives in one of these: `Debug` prints a
//! redaction, there is no `Display` or `Serialize`, and the bytes are zeroized on drop.
//! `expose_secret()` is called in few, known places (keystore, session signing, master auth,
//! the CLI's password input) — `tests/it/hygiene.rs` lists them.

use secrecy::{ExposeSecret, SecretBox, SecretString};
use zeroize::Zeroizing;

/// The operator's master password.
pub type Passphrase = SecretString;

/// 32 bytes of key material (key-encryption key, JWT secret, derived MAC keys).
pub type Key32 = SecretBox<[u8; 32]>;

/// Plaintext wallet key bytes, alive only inside one synchronous keystore call.
pub type KeyBytes = Zeroizing<Vec<u8>>;

/// Fills a fresh 32-byte secret from the OS CSPRNG.
pub fn random_key32() -> Key32 {
    let mut key = Box::new([0u8; 32]);
    getrandom::fill(key.as_mut()).expect("OS random number generator unavailable");
    SecretBox::new(key)
}

/// Random bytes for non-secret uses (salts, nonces, ids).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("OS random number generator unavailable");
    out
}

/// A new random master password: 32 CSPRNG bytes, URL-safe base64 (43 characters).
pub fn generate_passphrase() -> Passphrase {
    use base64::Engine;
    let key = random_key32();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.expose_secret()))
}

/// Fewest characters of a new master password.
pub const MASTER_PASSWORD_MIN_CHARS: usize = 12;
/// Most characters of a new master password (a bound, not a recommendation).
pub const MASTER_PASSWORD_MAX_CHARS: usize = 1024;

/// Why a new master password is refused. The messages never contain the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("the master password must be at least {MASTER_PASSWORD_MIN_CHARS} characters")]
    TooShort,
    #[error("the master password must be at most {MASTER_PASSWORD_MAX_CHARS} characters")]
    TooLong,
    #[error(
        "the master password must not contain control characters (NUL, tab, newline, DEL, …): it travels in the X-Master-Password header, which cannot carry them"
    )]
    Control,
    #[error(
        "the master password must be printable ASCII (letters, digits, punctuation and spaces): it travels in the X-Master-Password header, where other characters are not portable"
    )]
    NotAscii,
    #[error(
        "the master password must not start or end with a space: HTTP drops them from the X-Master-Password header"
    )]
    EdgeSpace,
}

/// The one rule for a new master password, whatever its source (prompt, env, file, REST,
/// `init`): 12-1024 characters of printable ASCII (0x20-0x7E: letters, digits, punctuation,
/// space), not starting or ending with a space. Every later master request carries it in the
/// `X-Master-Password` header: a password no header can carry would lock the operator out of
/// the master API for good. Existing passwords are not re-checked (unlock accepts what was
/// accepted before).
pub fn check_new_master_password(password: &Passphrase) -> Result<(), PasswordRule> {
    let text = password.expose_secret();
    if text.chars().any(char::is_control) {
        return Err(PasswordRule::Control);
    }
    if !text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(PasswordRule::NotAscii);
    }
    if text.len() < MASTER_PASSWORD_MIN_CHARS {
        return Err(PasswordRule::TooShort);
    }
    if text.len() > MASTER_PASSWORD_MAX_CHARS {
        return Err(PasswordRule::TooLong);
    }
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(PasswordRule::EdgeSpace);
    }
    Ok(())
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str) -> Result<(), PasswordRule> {
        check_new_master_password(&Passphrase::from(password.to_owned()))
    }

    #[test]
    fn new_master_passwords_must_fit_in_a_header() {
        assert_eq!(check("correct horse battery"), Ok(()));
        assert_eq!(check("twelve chars"), Ok(()));
        assert_eq!(check(&"~".repeat(1024)), Ok(()));
        assert_eq!(check(generate_passphrase().expose_secret()), Ok(()));
        assert_eq!(check("elevenchars"), Err(PasswordRule::TooShort));
        assert_eq!(check(&"x".repeat(1025)), Err(PasswordRule::TooLong));
        assert_eq!(check(&"\u{0}".repeat(40)), Err(PasswordRule::Control));
        assert_eq!(check("a long password\nwith a newline"), Err(PasswordRule::Control));
        assert_eq!(check("a long password\twith a tab"), Err(PasswordRule::Control));
        assert_eq!(check("a long password with DEL\u{7f}"), Err(PasswordRule::Control));
        assert_eq!(check("a long password with \u{85} NEL"), Err(PasswordRule::Control));
        assert_eq!(check("pässwörd-long-enough"), Err(PasswordRule::NotAscii));
        assert_eq!(check(" leading space password"), Err(PasswordRule::EdgeSpace));
        assert_eq!(check("trailing space password "), Err(PasswordRule::EdgeSpace));
        let err = check(&"\u{0}".repeat(40)).unwrap_err().to_string();
        assert!(!err.contains('\u{0}') && err.contains("X-Master-Password"), "{err}");
    }
}
