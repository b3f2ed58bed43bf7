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

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
