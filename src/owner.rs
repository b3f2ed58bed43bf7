//! Owner messages: the exact text a fund owner signs to approve or reject one transaction,
//! connect or disconnect as owner, or pull the kill switch. Pure: no store, no clock.
//!
//! EVM owners sign an EIP-4361 (SIWE) message with EIP-191 `personal_sign`; Solana owners
//! sign the same fields, laid out the same way, as plain text with Ed25519. A message binds
//! the daemon's domain, the owner address, the chain, a single-use nonce, issued-at and
//! expiration, the action (`Request ID: bursar:<action>`) and, as resources, the wallet, the
//! transaction and the digest of the decoded transaction. [`parse`] accepts only the
//! canonical rendering of what it parsed, so two texts never carry the same claims.

use crate::domain::{Address, ChainKind, TxId, WalletId};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long a nonce from `GET /v1/nonce` (and so a message) stays valid.
pub const NONCE_TTL_SECONDS: i64 = 300;
/// Clock skew tolerated on `Issued At`.
pub const MAX_SKEW_SECONDS: i64 = 60;
/// Larger messages are refused before parsing.
pub const MAX_MESSAGE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("owner message is malformed: {0}")]
    Malformed(String),
    #[error("owner signature is malformed: {0}")]
    BadSignature(&'static str),
    #[error("owner signature does not match the message's owner address")]
    WrongSigner,
}

/// What the owner authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Connect,
    Disconnect,
    Approve,
    Reject,
    /// Cancel a DELAYED or PENDING_APPROVAL transfer before it is signed.
    Cancel,
    KillSwitchOn,
    KillSwitchOff,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Connect,
        Action::Disconnect,
        Action::Approve,
        Action::Reject,
        Action::Cancel,
        Action::KillSwitchOn,
        Action::KillSwitchOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::Disconnect => "disconnect",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Cancel => "cancel",
            Action::KillSwitchOn => "kill-switch-on",
            Action::KillSwitchOff => "kill-switch-off",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Approve, reject and cancel name one transaction; the others do not.
    pub fn needs_tx(self) -> bool {
        matches!(self, Action::Approve | Action::Reject | Action::Cancel)
    }
}

/// Everything one owner message binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The daemon's domain (an RFC 3986 authority, e.g. `127.0.0.1:3100`).
    pub domain: String,
    /// The owner address as text (EIP-55 or base58).
    pub owner: String,
    /// EVM: the decimal chain id. Solana: the configured chain name.
    pub chain_id: String,
    /// One human-readable line (printable ASCII).
    pub statement: String,
    pub uri: String,
    pub nonce: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub action: Action,
    pub wallet: WalletId,
    pub tx: Option<TxId>,
    /// Hex SHA-256 of the canonical decoded transaction ([`Subject::digest`]).
    pub digest: Option<String>,
}

/// The decoded transaction an approval is about, in one canonical form: the approval page
/// shows these fields, and their digest is what the owner signs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    pub tx: String,
    pub wallet: String,
    pub chain: String,
    pub chain_id: String,
    pub from: String,
    pub to: String,
    /// `native` or the token contract address.
    pub asset: String,
    pub symbol: String,
    pub decimals: u8,
    pub amount_base_units: String,
}

impl Subject {
    /// Hex SHA-256 of the action and the fields in a fixed order (struct order; serde_json
    /// keeps it). The action is part of it, so an approve and a reject (or cancel) message
    /// for one transaction never carry the same digest.
    pub fn digest(&self, action: Action) -> String {
        let canonical = serde_json::to_vec(self).expect("a struct of strings serialises");
        let mut hasher = Sha256::new();
        hasher.update(b"bursar:");
        hasher.update(action.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(canonical);
        hex::encode(hasher.finalize())
    }
}

/// The first field in which `presented` differs from `expected`, ignoring nonce and times
/// (checked on their own). Used to accept only the exact text the daemon would issue.
pub fn first_difference(expected: &Claims, presented: &Claims) -> Option<&'static str> {
    [
        ("domain", expected.domain == presented.domain),
        ("owner address", expected.owner == presented.owner),
        ("chain", expected.chain_id == presented.chain_id),
        ("action", expected.action == presented.action),
        ("wallet", expected.wallet == presented.wallet),
        ("transaction", expected.tx == presented.tx),
        ("transaction digest", expected.digest == presented.digest),
        ("statement", expected.statement == presented.statement),
        ("URI", expected.uri == presented.uri),
    ]
    .into_iter()
    .find_map(|(field, same)| (!same).then_some(field))
}

const EVM_PREAMBLE: &str = " wants you to sign in with your Ethereum account:";
const SOLANA_PREAMBLE: &str = " wants you to sign in with your Solana account:";
const ACTION_PREFIX: &str = "bursar:";
const WALLET_URN: &str = "urn:bursar:wallet:";
const TX_URN: &str = "urn:bursar:tx:";
const DIGEST_URN: &str = "urn:bursar:digest:sha256:";

fn rfc3339(t: i64) -> Result<String, OwnerError> {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| OwnerError::Malformed("timestamp out of range".into()))
}

fn unix(s: &str) -> Result<i64, OwnerError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| OwnerError::Malformed(format!("not an RFC 3339 timestamp: {s:?}")))
}

/// The message text for `claims`, EIP-4361 layout.
pub fn render(kind: ChainKind, c: &Claims) -> Result<String, OwnerError> {
    if c.action.needs_tx() != (c.tx.is_some() && c.digest.is_some()) {
        return Err(OwnerError::Malformed(
            "approve and reject (only) name a transaction and its digest".into(),
        ));
    }
    if !c.statement.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(OwnerError::Malformed(
            "statement must be one line of printable ASCII".into(),
        ));
    }
    let preamble = match kind {
        ChainKind::Evm => EVM_PREAMBLE,
        ChainKind::Solana => SOLANA_PREAMBLE,
    };
    let mut resources = vec![format!("{WALLET_URN}{}", c.wallet)];
    resources.extend(c.tx.map(|t| format!("{TX_URN}{t}")));
    resources.extend(c.digest.as_ref().map(|d| format!("{DIGEST_URN}{d}")));
    let mut text = format!(
        "{}{preamble}\n{}\n\n{}\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}\nExpiration Time: {}\nRequest ID: {ACTION_PREFIX}{}\nResources:",
        c.domain,
        c.owner,
        c.statement,
        c.uri,
        c.chain_id,
        c.nonce,
        rfc3339(c.issued_at)?,
        rfc3339(c.expires_at)?,
        c.action.as_str(),
    );
    for r in resources {
        text.push_str("\n- ");
        text.push_str(&r);
    }
    Ok(text)
}

/// Which chain's layout a message claims to be in (by its preamble line); [`parse`] then
/// holds it to that layout exactly.
pub fn kind_of(text: &str) -> ChainKind {
    let first = text.split('\n').next().unwrap_or_default();
    if first.ends_with(EVM_PREAMBLE) {
        ChainKind::Evm
    } else {
        ChainKind::Solana
    }
}

/// Parses a message into its claims. Refuses anything that is not exactly the canonical
/// rendering of those claims (extra lines, other spacing, missing fields). EVM messages are
/// also parsed by the `siwe` crate, so only valid EIP-4361 passes.
pub fn parse(kind: ChainKind, text: &str) -> Result<Claims, OwnerError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(OwnerError::Malformed(format!("longer than {MAX_MESSAGE_BYTES} bytes")));
    }
    let bad = |what: &str| OwnerError::Malformed(what.to_owned());
    if kind == ChainKind::Evm {
        let siwe: siwe::Message = text
            .parse()
            .map_err(|e| OwnerError::Malformed(format!("EIP-4361: {e}")))?;
        if siwe.to_string() != text {
            return Err(bad("not in canonical EIP-4361 form"));
        }
    }
    let mut lines = text.split('\n');
    let mut next = |tag: &str| -> Result<String, OwnerError> {
        lines
            .next()
            .and_then(|l| l.strip_prefix(tag))
            .map(str::to_owned)
            .ok_or_else(|| OwnerError::Malformed(format!("expected a line starting with {tag:?}")))
    };
    let preamble = next("")?;
    let domain = preamble
        .strip_suffix(match kind {
            ChainKind::Evm => EVM_PREAMBLE,
            ChainKind::Solana => SOLANA_PREAMBLE,
        })
        .ok_or_else(|| bad("first line is not the sign-in preamble for this chain"))?
        .to_owned();
    let owner = next("")?;
    next("")?;
    let statement = next("")?;
    next("")?;
    let uri = next("URI: ")?;
    if next("Version: ")? != "1" {
        return Err(bad("Version must be 1"));
    }
    let chain_id = next("Chain ID: ")?;
    let nonce = next("Nonce: ")?;
    let issued_at = unix(&next("Issued At: ")?)?;
    let expires_at = unix(&next("Expiration Time: ")?)?;
    let action = next("Request ID: ")?;
    let action = action
        .strip_prefix(ACTION_PREFIX)
        .and_then(Action::parse)
        .ok_or_else(|| bad("Request ID is not a bursar action"))?;
    if !next("Resources:")?.is_empty() {
        return Err(bad("Resources: must be alone on its line"));
    }
    let mut wallet = None;
    let mut tx = None;
    let mut digest = None;
    for line in lines {
        let r = line
            .strip_prefix("- ")
            .ok_or_else(|| bad("resource lines start with \"- \""))?;
        if let Some(w) = r.strip_prefix(WALLET_URN) {
            wallet = Some(
                w.parse::<WalletId>()
                    .map_err(|_| bad("wallet resource is not a wallet id"))?,
            );
        } else if let Some(t) = r.strip_prefix(TX_URN) {
            tx = Some(
                t.parse::<TxId>()
                    .map_err(|_| bad("tx resource is not a transaction id"))?,
            );
        } else if let Some(d) = r.strip_prefix(DIGEST_URN) {
            digest = Some(d.to_owned());
        } else {
            return Err(bad("unknown resource"));
        }
    }
    let claims = Claims {
        domain,
        owner,
        chain_id,
        statement,
        uri,
        nonce,
        issued_at,
        expires_at,
        action,
        wallet: wallet.ok_or_else(|| bad("no wallet resource"))?,
        tx,
        digest,
    };
    // Canonical: what we would render for these claims is exactly what was signed.
    if render(kind, &claims)? != text {
        return Err(bad("not in canonical form"));
    }
    Ok(claims)
}

/// Checks that `signature` over `text` was made by `owner`: EIP-191 `personal_sign`
/// (65 bytes r‖s‖v) for EVM, Ed25519 (64 bytes) over the UTF-8 text for Solana.
pub fn verify_signature(owner: &Address, text: &str, signature: &[u8]) -> Result<(), OwnerError> {
    match owner {
        Address::Evm(expected) => {
            let sig: &[u8; 65] = signature
                .try_into()
                .map_err(|_| OwnerError::BadSignature("an EVM signature is 65 bytes (r, s, v)"))?;
            let signature = alloy_primitives::Signature::from_raw_array(sig)
                .map_err(|_| OwnerError::BadSignature("not a valid secp256k1 signature"))?;
            if signature.normalize_s().is_some() {
                // High-s: a malleated copy of some signature. Wallets never produce these.
                return Err(OwnerError::BadSignature("non-canonical (high-s) signature"));
            }
            let hash = alloy_primitives::eip191_hash_message(text.as_bytes());
            let key = signature
                .recover_from_prehash(&hash)
                .map_err(|_| OwnerError::BadSignature("no key recovers from this signature"))?;
            if alloy_primitives::Address::from_public_key(&key) != *expected {
                return Err(OwnerError::WrongSigner);
            }
            Ok(())
        }
        Address::Solana(key) => {
            let sig: &[u8; 64] = signature
                .try_into()
                .map_err(|_| OwnerError::BadSignature("an Ed25519 signature is 64 bytes"))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| OwnerError::WrongSigner)?;
            key.verify_strict(text.as_bytes(), &ed25519_dalek::Signature::from_bytes(sig))
                .map_err(|_| OwnerError::WrongSigner)
        }
    }
}

/// Decodes a signature as sent in `X-Owner-Signature`: hex (`0x` optional) or, for Solana
/// wallets' usual form, base58.
pub fn decode_signature(s: &str) -> Result<Vec<u8>, OwnerError> {
    let s = s.trim();
    let hex_part = s.strip_prefix("0x").unwrap_or(s);
    if let Ok(bytes) = hex::decode(hex_part) {
        return Ok(bytes);
    }
    bs58::decode(s)
        .into_vec()
        .map_err(|_| OwnerError::BadSignature("X-Owner-Signature is neither hex nor base58"))
}

/// An owner key held by the CLI (`--key-file`), for owners who sign on this machine.
/// EVM: 32-byte secp256k1 key in hex. Solana: a `solana-keygen` JSON array (64 bytes) or a
/// 32-byte seed in hex.
pub enum LocalKey {
    Evm(k256::ecdsa::SigningKey),
    Solana(ed25519_dalek::SigningKey),
}

impl LocalKey {
    pub fn parse(kind: ChainKind, text: &str) -> Result<LocalKey, OwnerError> {
        let text = zeroize::Zeroizing::new(text.trim().to_owned());
        let bad = || OwnerError::BadSignature("the key file does not hold a key for this chain");
        let bytes = zeroize::Zeroizing::new(if text.starts_with('[') {
            serde_json::from_str::<Vec<u8>>(&text).map_err(|_| bad())?
        } else {
            hex::decode(text.strip_prefix("0x").unwrap_or(&text)).map_err(|_| bad())?
        });
        match kind {
            ChainKind::Evm => k256::ecdsa::SigningKey::from_slice(&bytes)
                .map(LocalKey::Evm)
                .map_err(|_| bad()),
            ChainKind::Solana => {
                // A seed (32 bytes), or solana-keygen's keypair: seed then public key (64).
                if bytes.len() != 32 && bytes.len() != 64 {
                    return Err(bad());
                }
                let seed: [u8; 32] = bytes[..32].try_into().map_err(|_| bad())?;
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                if bytes.len() == 64 && bytes[32..] != key.verifying_key().to_bytes() {
                    return Err(OwnerError::BadSignature(
                        "the keypair file's public key does not match its secret key",
                    ));
                }
                Ok(LocalKey::Solana(key))
            }
        }
    }

    pub fn address(&self) -> String {
        match self {
            LocalKey::Evm(k) => alloy_primitives::Address::from_public_key(k.verifying_key()).to_checksum(None),
            LocalKey::Solana(k) => bs58::encode(k.verifying_key().as_bytes()).into_string(),
        }
    }

    /// The signature as `X-Owner-Signature` carries it (hex).
    pub fn sign(&self, text: &str) -> Result<String, OwnerError> {
        match self {
            LocalKey::Evm(k) => {
                let hash = alloy_primitives::eip191_hash_message(text.as_bytes());
                let (sig, rec) = k
                    .sign_prehash_recoverable(hash.as_slice())
                    .map_err(|_| OwnerError::BadSignature("signing failed"))?;
                let mut out = sig.to_bytes().to_vec();
                out.push(27 + rec.to_byte());
                Ok(format!("0x{}", hex::encode(out)))
            }
            LocalKey::Solana(k) => {
                use ed25519_dalek::Signer;
                Ok(hex::encode(k.sign(text.as_bytes()).to_bytes()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_solana_keygen_keypair_file_is_an_owner_key() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let mut pair = [5u8; 32].to_vec();
        pair.extend_from_slice(&key.verifying_key().to_bytes());
        let file = serde_json::to_string(&pair).unwrap();
        let local = LocalKey::parse(ChainKind::Solana, &file).unwrap();
        assert_eq!(
            local.address(),
            bs58::encode(key.verifying_key().as_bytes()).into_string()
        );
        // A corrupt file (the public half of another key) is refused, not used.
        pair[40] ^= 1;
        assert!(LocalKey::parse(ChainKind::Solana, &serde_json::to_string(&pair).unwrap()).is_err());
        assert!(LocalKey::parse(ChainKind::Solana, "[1,2,3]").is_err());
    }

    use super::*;

    fn claims(action: Action, owner: &str) -> Claims {
        let tx = action.needs_tx().then(TxId::new);
        Claims {
            domain: "127.0.0.1:3100".into(),
            owner: owner.into(),
            chain_id: "31337".into(),
            statement: "Approve sending 0.5 ETH to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8.".into(),
            uri: "http://127.0.0.1:3100/approve/x".into(),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_000_300,
            action,
            wallet: WalletId::new(),
            tx,
            digest: action.needs_tx().then(|| "ab".repeat(32)),
        }
    }

    const OWNER: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    const OWNER_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn sign_evm(text: &str) -> Vec<u8> {
        let key = LocalKey::parse(ChainKind::Evm, OWNER_KEY).unwrap();
        assert_eq!(key.address(), OWNER);
        decode_signature(&key.sign(text).unwrap()).unwrap()
    }

    #[test]
    fn only_approve_reject_and_cancel_name_a_transaction() {
        let named: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| a.needs_tx())
            .map(Action::as_str)
            .collect();
        assert_eq!(named, ["approve", "reject", "cancel"]);
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
    }

    #[test]
    fn evm_round_trip_is_siwe_and_verifies() {
        for action in Action::ALL {
            let c = claims(action, OWNER);
            let text = render(ChainKind::Evm, &c).unwrap();
            let siwe: siwe::Message = text.parse().expect("valid EIP-4361");
            assert_eq!(siwe.to_string(), text);
            assert_eq!(parse(ChainKind::Evm, &text).unwrap(), c);
            let owner = Address::parse(ChainKind::Evm, OWNER).unwrap();
            verify_signature(&owner, &text, &sign_evm(&text)).unwrap();
        }
    }

    #[test]
    fn tampered_or_foreign_signatures_fail() {
        let text = render(ChainKind::Evm, &claims(Action::Approve, OWNER)).unwrap();
        let owner = Address::parse(ChainKind::Evm, OWNER).unwrap();
        let sig = sign_evm(&text);
        let other = text.replace("31337", "31338");
        assert!(verify_signature(&owner, &other, &sig).is_err());
        let stranger = Address::parse(ChainKind::Evm, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap();
        assert_eq!(verify_signature(&stranger, &text, &sig), Err(OwnerError::WrongSigner));
        assert!(verify_signature(&owner, &text, &sig[..64]).is_err());
        // The malleated twin (s → n − s, v flipped) is refused.
        let s = k256::ecdsa::Signature::from_slice(&sig[..64]).unwrap();
        let high = k256::ecdsa::Signature::from_scalars(s.r(), -*s.s()).unwrap();
        let mut twin = high.to_bytes().to_vec();
        twin.push(if sig[64] == 27 { 28 } else { 27 });
        assert!(verify_signature(&owner, &text, &twin).is_err());
    }

    #[test]
    fn first_difference_names_the_field() {
        let c = claims(Action::Approve, OWNER);
        assert_eq!(first_difference(&c, &c.clone()), None);
        let mut other = c.clone();
        other.nonce = "ffff".into();
        other.issued_at += 5;
        assert_eq!(first_difference(&c, &other), None, "nonce and times are checked apart");
        other.statement = "Approve sending 0.01 ETH.".into();
        assert_eq!(first_difference(&c, &other), Some("statement"));
        other.action = Action::Reject;
        assert_eq!(first_difference(&c, &other), Some("action"));
        let mut uri = c.clone();
        uri.uri = "http://evil.example/approve/x".into();
        assert_eq!(first_difference(&c, &uri), Some("URI"));
    }

    #[test]
    fn non_canonical_texts_are_refused() {
        let text = render(ChainKind::Evm, &claims(Action::Approve, OWNER)).unwrap();
        for bad in [
            format!("{text}\n"),
            format!("{text}\n- urn:bursar:wallet:{}", WalletId::new()),
            text.replace("Request ID: bursar:approve", "Request ID: bursar:steal"),
            text.replace("\nResources:", "\nResources: "),
            text.replace(OWNER, &OWNER.to_lowercase()),
            text.replacen("\n- urn:bursar:tx:", "\n- urn:bursar:other:", 1),
            "x".repeat(MAX_MESSAGE_BYTES + 1),
        ] {
            assert!(parse(ChainKind::Evm, &bad).is_err(), "accepted:\n{bad}");
        }
        // The length bound: refused for its length past it, read (and refused otherwise) at it.
        let too_long = |n: usize| matches!(parse(ChainKind::Solana, &"x".repeat(n)), Err(OwnerError::Malformed(m)) if m.starts_with("longer than"));
        assert!(too_long(MAX_MESSAGE_BYTES + 1));
        assert!(!too_long(MAX_MESSAGE_BYTES));
        // approve without a transaction cannot even be rendered
        let mut c = claims(Action::Approve, OWNER);
        c.tx = None;
        assert!(render(ChainKind::Evm, &c).is_err());
    }

    #[test]
    fn solana_round_trip_verifies_ed25519() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let owner_text = bs58::encode(key.verifying_key().as_bytes()).into_string();
        let mut c = claims(Action::Reject, &owner_text);
        c.chain_id = "localsol".into();
        let text = render(ChainKind::Solana, &c).unwrap();
        assert!(text.contains("Solana account"));
        assert_eq!(parse(ChainKind::Solana, &text).unwrap(), c);
        assert!(parse(ChainKind::Evm, &text).is_err());
        let owner = Address::parse(ChainKind::Solana, &owner_text).unwrap();
        use ed25519_dalek::Signer;
        let sig = key.sign(text.as_bytes()).to_bytes();
        verify_signature(&owner, &text, &sig).unwrap();
        assert!(verify_signature(&owner, &text.replace("localsol", "mainnet"), &sig).is_err());
        let b58 = bs58::encode(sig).into_string();
        assert_eq!(decode_signature(&b58).unwrap(), sig.to_vec());
    }

    #[test]
    fn digest_is_stable_and_field_sensitive() {
        let s = Subject {
            tx: "t".into(),
            wallet: "w".into(),
            chain: "anvil".into(),
            chain_id: "31337".into(),
            from: "a".into(),
            to: "b".into(),
            asset: "native".into(),
            symbol: "ETH".into(),
            decimals: 18,
            amount_base_units: "1".into(),
        };
        assert_eq!(s.digest(Action::Approve), s.clone().digest(Action::Approve));
        let mut t = s.clone();
        t.amount_base_units = "2".into();
        assert_ne!(s.digest(Action::Approve), t.digest(Action::Approve));
        // The action is bound: approve, reject and cancel digests all differ.
        let digests: std::collections::HashSet<_> = [Action::Approve, Action::Reject, Action::Cancel]
            .into_iter()
            .map(|a| s.digest(a))
            .collect();
        assert_eq!(digests.len(), 3);
    }
}
