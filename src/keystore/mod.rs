//! The keystore: Argon2id KDF, AES-256-GCM sealing, lock state, signing. The only code that
//! ever sees a plaintext key. It does no IO, knows no policy, and never holds a key across
//! an `.await`: every decrypt → use → zeroize happens inside one synchronous call.
//!
//! Layout: the master password derives (once, at unlock) a 32-byte root with Argon2id; HMAC
//! splits it into the key-encryption key (KEK) and the master-auth key. Each sealed item is
//! AES-256-GCM with a fresh 96-bit nonce and an AAD that binds what it belongs to (format
//! version, purpose, wallet id, chain, address, KDF parameters and salt).

mod kdf;

use crate::domain::{Address, ChainKind, ChainName, WalletId};
pub use crate::domain::{EvmSignature, Signature, SigningPayload};
use crate::secret::{Key32, KeyBytes, Passphrase, ct_eq, random_bytes};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use kdf::KdfParams;

/// Format version of keystore records.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("wrong master password")]
    WrongPassword,
    #[error("KDF parameters out of bounds: {0}")]
    KdfOutOfBounds(String),
    #[error("unsupported keystore format version {0}")]
    UnsupportedVersion(u32),
    /// Deliberately coarse: which byte was wrong helps only an attacker.
    #[error("key record failed its integrity check")]
    Corrupt,
    #[error("wallet kind {0} does not match the key's address")]
    KindMismatch(ChainKind),
    #[error("key derivation failed")]
    Kdf,
}

/// An AEAD-sealed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(with = "hex::serde")]
    pub nonce: [u8; 12],
    #[serde(with = "hex::serde")]
    pub ciphertext: Vec<u8>,
}

/// The stored, public part of a keystore: how to derive its keys, and a verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeystoreMeta {
    pub version: u32,
    pub kdf: KdfParams,
    #[serde(with = "hex::serde")]
    pub salt: [u8; 16],
    /// A known plaintext sealed under the KEK: opening it proves the password.
    pub verifier: Sealed,
}

impl KeystoreMeta {
    /// Whether `password` opens this keystore (`doctor` asks it of `recovery.key`): one KDF
    /// run, nothing kept.
    pub fn opens_with(&self, password: &Passphrase) -> Result<bool, KeystoreError> {
        match Unlocked::unlock(self, password) {
            Ok(_) => Ok(true),
            Err(KeystoreError::WrongPassword) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// What a sealed wallet key is bound to. Changing any field breaks decryption.
#[derive(Debug, Clone, Copy)]
pub struct WalletKeyRef<'a> {
    pub wallet_id: WalletId,
    pub chain: &'a ChainName,
    pub address: Address,
    pub sealed: &'a Sealed,
}

/// An unlocked keystore. Signing exists only on this type: "sign while locked" does not
/// compile. Dropping it zeroizes the KEK and the auth key.
pub struct Unlocked {
    kek: Key32,
    auth_key: Key32,
    master_tag: [u8; 32],
    meta: KeystoreMeta,
    /// The verifier says this store's audit chain is keyed (see [`VERIFIER_KEYED_AUDIT`]).
    audit_keyed: bool,
    /// Sealed wallet keys already opened and found to derive their recorded address, by a
    /// digest of (AAD, nonce, ciphertext): the check (a scalar multiplication, more than the
    /// signature itself) runs once per sealed key and process, and every open still decrypts
    /// and authenticates first.
    checked: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

/// The audit chain's MAC key: 32 random bytes sealed in the store like the JWT secret (so
/// `set-master` re-seals it and every entry MACed before keeps verifying). Opened at unlock
/// and handed to the store, which only ever asks it for a MAC. Redacted `Debug`; zeroized
/// on drop.
pub struct AuditKey(Key32);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([REDACTED])")
    }
}

impl AuditKey {
    /// HMAC-SHA256 over the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()).expect("any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unlocked([REDACTED])")
    }
}

const VERIFIER_PLAINTEXT: &[u8] = b"bursar keystore verifier v1";
/// The verifier of a store whose audit chain is keyed (every store created or unlocked since
/// keyed chains came in). Only the KEK can seal it, so a store that says so must also hold its
/// sealed audit key: deleting the key to pass a rewritten chain off as a legacy (unkeyed) one
/// is caught at unlock.
const VERIFIER_KEYED_AUDIT: &[u8] = b"bursar keystore verifier v1; audit chain keyed";

impl Unlocked {
    /// Creates a new keystore for `password` with fresh salt. Runs the KDF once.
    pub fn create(password: &Passphrase, kdf: KdfParams) -> Result<(Self, KeystoreMeta), KeystoreError> {
        kdf.check_bounds()?;
        let salt = random_bytes::<16>();
        let (kek, auth_key) = derive(password, &kdf, &salt)?;
        let mut meta = KeystoreMeta {
            version: FORMAT_VERSION,
            kdf,
            salt,
            verifier: Sealed {
                nonce: [0; 12],
                ciphertext: Vec::new(),
            },
        };
        meta.verifier = seal(&kek, &meta_aad(&meta), VERIFIER_KEYED_AUDIT);
        let master_tag = master_tag(&auth_key, password.expose_secret().as_bytes());
        Ok((
            Self {
                kek,
                auth_key,
                master_tag,
                meta: meta.clone(),
                audit_keyed: true,
                checked: Default::default(),
            },
            meta,
        ))
    }

    /// Unlocks a stored keystore. Runs the KDF once; the parameters are bounded first so a
    /// tampered record cannot make us allocate gigabytes or spin for minutes.
    pub fn unlock(meta: &KeystoreMeta, password: &Passphrase) -> Result<Self, KeystoreError> {
        if meta.version != FORMAT_VERSION {
            return Err(KeystoreError::UnsupportedVersion(meta.version));
        }
        meta.kdf.check_bounds()?;
        let (kek, auth_key) = derive(password, &meta.kdf, &meta.salt)?;
        let verified = open(&kek, &meta_aad(meta), &meta.verifier).map_err(|_| KeystoreError::WrongPassword)?;
        let audit_keyed = ct_eq(&verified, VERIFIER_KEYED_AUDIT);
        if !audit_keyed && !ct_eq(&verified, VERIFIER_PLAINTEXT) {
            return Err(KeystoreError::WrongPassword);
        }
        let master_tag = master_tag(&auth_key, password.expose_secret().as_bytes());
        Ok(Self {
            kek,
            auth_key,
            master_tag,
            meta: meta.clone(),
            audit_keyed,
            checked: Default::default(),
        })
    }

    pub fn meta(&self) -> &KeystoreMeta {
        &self.meta
    }

    /// Whether this store's audit chain is keyed (it then must hold a sealed audit key).
    pub fn audit_keyed(&self) -> bool {
        self.audit_keyed
    }

    /// Re-seals the verifier to say the audit chain is keyed (the one-time switch of a store
    /// created before keyed chains). Returns the meta to store in the same commit as the
    /// sealed audit key. Other sealed items are untouched: the verifier is not part of any AAD.
    pub fn mark_audit_keyed(&mut self) -> KeystoreMeta {
        self.meta.verifier = seal(&self.kek, &meta_aad(&self.meta), VERIFIER_KEYED_AUDIT);
        self.audit_keyed = true;
        self.meta.clone()
    }

    /// A new random audit-chain key, and its form sealed for `purpose`.
    pub fn new_audit_key(&self, purpose: &str) -> (AuditKey, Sealed) {
        let key = crate::secret::random_key32();
        let sealed = self.seal_secret(purpose, key.expose_secret());
        (AuditKey(key), sealed)
    }

    /// Opens the audit-chain key sealed for `purpose`.
    pub fn open_audit_key(&self, purpose: &str, sealed: &Sealed) -> Result<AuditKey, KeystoreError> {
        let bytes = self.open_secret(purpose, sealed)?;
        let mut key = Box::new([0u8; 32]);
        if bytes.len() != key.len() {
            return Err(KeystoreError::Corrupt);
        }
        key.copy_from_slice(&bytes);
        Ok(AuditKey(SecretBox::new(key)))
    }

    /// Per-request master check: a keyed MAC compared in constant time. No KDF per request
    /// (a 64 MiB Argon2id per request would be a denial-of-service lever).
    pub fn check_master(&self, candidate: &[u8]) -> bool {
        ct_eq(&master_tag(&self.auth_key, candidate), &self.master_tag)
    }

    /// Seals a daemon secret (e.g. the JWT key) for `purpose`.
    pub fn seal_secret(&self, purpose: &str, secret: &[u8]) -> Sealed {
        seal(&self.kek, &self.secret_aad(purpose), secret)
    }

    pub fn open_secret(&self, purpose: &str, sealed: &Sealed) -> Result<KeyBytes, KeystoreError> {
        open(&self.kek, &self.secret_aad(purpose), sealed)
    }

    /// Generates a key of `kind` for a new wallet and seals it. Returns its address.
    pub fn generate_wallet_key(&self, wallet_id: WalletId, chain: &ChainName, kind: ChainKind) -> (Address, Sealed) {
        let (secret, address) = match kind {
            ChainKind::Evm => loop {
                let bytes = Zeroizing::new(random_bytes::<32>());
                // Retry in the ~2^-128 case of a value outside the curve order.
                if let Ok(key) = k256::ecdsa::SigningKey::from_slice(bytes.as_ref()) {
                    break (Zeroizing::new(bytes.to_vec()), evm_address(&key));
                }
            },
            ChainKind::Solana => {
                let seed = Zeroizing::new(random_bytes::<32>());
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                (
                    Zeroizing::new(seed.to_vec()),
                    Address::Solana(key.verifying_key().to_bytes()),
                )
            }
        };
        let aad = self.wallet_aad(wallet_id, chain, &address);
        (address, seal(&self.kek, &aad, &secret))
    }

    /// Opens a wallet key and checks that it still derives the recorded address.
    pub fn verify_wallet_key(&self, key: WalletKeyRef<'_>) -> Result<(), KeystoreError> {
        self.open_checked(key).map(drop)
    }

    /// Re-seals a wallet key under another unlocked keystore (set-master).
    pub fn reseal_wallet_key(&self, key: WalletKeyRef<'_>, to: &Unlocked) -> Result<Sealed, KeystoreError> {
        let secret = self.open_checked(key)?;
        let aad = to.wallet_aad(key.wallet_id, key.chain, &key.address);
        Ok(seal(&to.kek, &aad, &secret))
    }

    /// Re-seals a daemon secret under another unlocked keystore (set-master).
    pub fn reseal_secret(&self, purpose: &str, sealed: &Sealed, to: &Unlocked) -> Result<Sealed, KeystoreError> {
        let secret = self.open_secret(purpose, sealed)?;
        Ok(to.seal_secret(purpose, &secret))
    }

    /// Signs what a chain adapter asked for, with the wallet's key: the only signing entry
    /// point. Decrypt → (the first time: re-derive and check the address) → sign → zeroize, in
    /// one synchronous call. A payload of the other key kind is refused.
    pub fn sign(&self, key: WalletKeyRef<'_>, payload: &SigningPayload) -> Result<Signature, KeystoreError> {
        let secret = self.open_checked(key)?;
        match (key.address.kind(), payload) {
            (ChainKind::Evm, SigningPayload::Secp256k1Prehash(prehash)) => {
                // The scalar alone: `SigningKey` would compute the public key again.
                use k256::ecdsa::hazmat::{DigestPrimitive, SignPrimitive, bits2field};
                let scalar = Zeroizing::new(
                    k256::NonZeroScalar::try_from(secret.as_slice()).map_err(|_| KeystoreError::Corrupt)?,
                );
                let z = bits2field::<k256::Secp256k1>(prehash).map_err(|_| KeystoreError::Corrupt)?;
                let (sig, recid) = scalar
                    .as_ref()
                    .try_sign_prehashed_rfc6979::<<k256::Secp256k1 as DigestPrimitive>::Digest>(&z, &[])
                    .map_err(|_| KeystoreError::Corrupt)?;
                let recid = recid.ok_or(KeystoreError::Corrupt)?;
                let (r, s) = sig.split_bytes();
                Ok(Signature::Secp256k1(EvmSignature {
                    r: r.into(),
                    s: s.into(),
                    y_parity: recid.is_y_odd(),
                }))
            }
            (ChainKind::Solana, SigningPayload::Ed25519Message(message)) => {
                use ed25519_dalek::Signer;
                let seed: &[u8; 32] = secret.as_slice().try_into().map_err(|_| KeystoreError::Corrupt)?;
                Ok(Signature::Ed25519(
                    ed25519_dalek::SigningKey::from_bytes(seed).sign(message).to_bytes(),
                ))
            }
            (kind, _) => Err(KeystoreError::KindMismatch(kind)),
        }
    }

    /// Decrypts a wallet key; the first time this sealed key is opened, also re-derives its
    /// address (a mismatch is corruption, not a wallet).
    fn open_checked(&self, key: WalletKeyRef<'_>) -> Result<KeyBytes, KeystoreError> {
        let aad = self.wallet_aad(key.wallet_id, key.chain, &key.address);
        let secret = open(&self.kek, &aad, key.sealed)?;
        let digest: [u8; 32] = {
            use sha2::Digest;
            let mut h = Sha256::new();
            for part in [&aad[..], &key.sealed.nonce[..], &key.sealed.ciphertext[..]] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            h.finalize().into()
        };
        let checked = || self.checked.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !checked().contains(&digest) {
            // Outside the lock: a scalar multiplication.
            if derived_address(key.address.kind(), &secret)? != key.address {
                return Err(KeystoreError::Corrupt);
            }
            checked().insert(digest);
        }
        Ok(secret)
    }

    fn wallet_aad(&self, wallet_id: WalletId, chain: &ChainName, address: &Address) -> Vec<u8> {
        let mut aad = self.base_aad("wallet-key");
        for field in [
            wallet_id.to_string().as_str(),
            chain.as_str(),
            address.kind().as_str(),
            &address.to_string(),
        ] {
            aad.extend_from_slice(field.as_bytes());
            aad.push(0);
        }
        aad
    }

    fn secret_aad(&self, purpose: &str) -> Vec<u8> {
        let mut aad = self.base_aad("secret");
        aad.extend_from_slice(purpose.as_bytes());
        aad.push(0);
        aad
    }

    fn base_aad(&self, purpose: &str) -> Vec<u8> {
        let mut aad = meta_aad(&self.meta);
        aad.extend_from_slice(purpose.as_bytes());
        aad.push(0);
        aad
    }
}

/// A sealed backup archive's parameters: how its key is derived from the passphrase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveKey {
    pub kdf: KdfParams,
    #[serde(with = "hex::serde")]
    pub salt: [u8; 16],
}

/// Seals a backup archive under `passphrase`: Argon2id with `kdf` and a fresh salt (one run),
/// then AES-256-GCM with a fresh nonce under a key for this purpose only, `aad` bound (the
/// archive's header). The same primitives and bounds as the keystore itself.
pub fn seal_archive(
    passphrase: &Passphrase,
    kdf: KdfParams,
    aad: impl Fn(&ArchiveKey) -> Vec<u8>,
    plaintext: &[u8],
) -> Result<(ArchiveKey, Sealed), KeystoreError> {
    kdf.check_bounds()?;
    let key = ArchiveKey {
        kdf,
        salt: random_bytes::<16>(),
    };
    let aead_key = archive_key(passphrase, &key)?;
    Ok((key.clone(), seal(&aead_key, &aad(&key), plaintext)))
}

/// Opens what [`seal_archive`] sealed. A wrong passphrase and a changed byte (header or body)
/// are the same error: the tag does not verify.
pub fn open_archive(
    passphrase: &Passphrase,
    key: &ArchiveKey,
    aad: &[u8],
    sealed: &Sealed,
) -> Result<KeyBytes, KeystoreError> {
    key.kdf.check_bounds()?;
    let aead_key = archive_key(passphrase, key)?;
    open(&aead_key, aad, sealed)
}

fn archive_key(passphrase: &Passphrase, key: &ArchiveKey) -> Result<Key32, KeystoreError> {
    let root = key.kdf.derive(passphrase.expose_secret().as_bytes(), &key.salt)?;
    Ok(prf(&root, b"bursar/v1/backup-archive"))
}

/// The address a decrypted key derives (the keys built here zeroize on drop).
fn derived_address(kind: ChainKind, secret: &[u8]) -> Result<Address, KeystoreError> {
    Ok(match kind {
        ChainKind::Evm => {
            evm_address(&k256::ecdsa::SigningKey::from_slice(secret).map_err(|_| KeystoreError::Corrupt)?)
        }
        ChainKind::Solana => {
            let seed: &[u8; 32] = secret.try_into().map_err(|_| KeystoreError::Corrupt)?;
            Address::Solana(ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes())
        }
    })
}

fn evm_address(key: &k256::ecdsa::SigningKey) -> Address {
    let point = key.verifying_key().to_encoded_point(false);
    let raw: &[u8; 64] = point.as_bytes()[1..]
        .try_into()
        .expect("uncompressed point is 65 bytes");
    Address::Evm(alloy_primitives::Address::from_raw_public_key(raw))
}

/// AAD prefix binding the keystore header: format version, KDF parameters, salt.
fn meta_aad(meta: &KeystoreMeta) -> Vec<u8> {
    let mut aad = Vec::with_capacity(96);
    aad.extend_from_slice(b"bursar/keystore\0");
    aad.extend_from_slice(&meta.version.to_be_bytes());
    aad.extend_from_slice(&meta.kdf.m_cost_kib.to_be_bytes());
    aad.extend_from_slice(&meta.kdf.t_cost.to_be_bytes());
    aad.extend_from_slice(&meta.kdf.p_cost.to_be_bytes());
    aad.extend_from_slice(&meta.salt);
    aad
}

fn derive(password: &Passphrase, kdf: &KdfParams, salt: &[u8; 16]) -> Result<(Key32, Key32), KeystoreError> {
    let root = kdf.derive(password.expose_secret().as_bytes(), salt)?;
    Ok((prf(&root, b"bursar/v1/kek"), prf(&root, b"bursar/v1/master-auth")))
}

fn prf(key: &Key32, label: &[u8]) -> Key32 {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret()).expect("any key length");
    mac.update(label);
    let mut out = Box::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    SecretBox::new(out)
}

fn master_tag(auth_key: &Key32, candidate: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(auth_key.expose_secret()).expect("any key length");
    mac.update(candidate);
    mac.finalize().into_bytes().into()
}

fn cipher(kek: &Key32) -> Aes256Gcm {
    Aes256Gcm::new(&(*kek.expose_secret()).into())
}

fn seal(kek: &Key32, aad: &[u8], plaintext: &[u8]) -> Sealed {
    let nonce = random_bytes::<12>();
    let ciphertext = cipher(kek)
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of a short message cannot fail");
    Sealed { nonce, ciphertext }
}

fn open(kek: &Key32, aad: &[u8], sealed: &Sealed) -> Result<KeyBytes, KeystoreError> {
    cipher(kek)
        .decrypt(
            &Nonce::from(sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| KeystoreError::Corrupt)
}

#[cfg(test)]
impl AuditKey {
    /// A fixed key for unit tests elsewhere (the store's), without a KDF run.
    pub fn for_tests(byte: u8) -> Self {
        AuditKey(SecretBox::new(Box::new([byte; 32])))
    }
}

#[cfg(test)]
mod tests;
