//! The backup archive: every key and value of the store, sealed under a passphrase with the
//! keystore's own primitives (Argon2id → AES-256-GCM, `keystore::seal_archive`).
//!
//! Layout: the magic line `bursar-backup 1\n`, one JSON header line (format, creation time,
//! version, daemon id, entry count, the KDF parameters and salt), the 12-byte nonce, then the
//! ciphertext of the entries (`u32` big-endian length + key, `u32` length + value, repeated).
//! The magic and the header are the AEAD's associated data: a changed byte anywhere, or a
//! wrong passphrase, fails the tag and nothing is restored. The wallet keys inside were
//! already sealed under the master password; the archive adds a second lock around the
//! whole store (records, policies, the audit chain) so a copied file shows nothing.

use crate::keystore::{self, ArchiveKey, KdfParams, KeystoreError, Sealed};
use crate::secret::Passphrase;
use crate::store::Entries;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const MAGIC: &[u8] = b"bursar-backup 1\n";
const FORMAT: u32 = 1;
/// A header longer than this is not ours (read bound, before any KDF runs).
const MAX_HEADER: usize = 4096;
/// The store keys every archive must hold: without them a restored store cannot open.
pub const REQUIRED_KEYS: [&str; 3] = [
    crate::store::keys::KEYSTORE,
    crate::store::keys::DAEMON,
    crate::store::keys::JWT_SECRET,
];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a bursar backup (no `bursar-backup 1` header)")]
    NotAnArchive,
    #[error("unsupported backup format {0}")]
    UnsupportedFormat(u32),
    #[error("the header is malformed: {0}")]
    BadHeader(String),
    /// Wrong passphrase, or any byte changed: AES-GCM cannot tell them apart, and neither do we.
    #[error("the archive does not open: wrong passphrase, or the file was changed or damaged")]
    DoesNotOpen,
    #[error("the archive's contents are inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Keystore(KeystoreError),
}

/// What the header says of the archive (readable without the passphrase).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    pub created_at: i64,
    pub bursar_version: String,
    pub daemon_id: String,
    pub entries: u64,
    pub key: ArchiveKey,
}

/// Seals `entries` into an archive. One Argon2id run with `kdf`.
pub fn seal(
    passphrase: &Passphrase,
    kdf: KdfParams,
    entries: &Entries,
    created_at: i64,
    daemon_id: &str,
) -> Result<Vec<u8>, BackupError> {
    let mut body = Zeroizing::new(Vec::with_capacity(
        entries.iter().map(|(k, v)| k.len() + v.len() + 8).sum(),
    ));
    for (key, value) in entries {
        for part in [key, value] {
            let len = u32::try_from(part.len()).map_err(|_| BackupError::Corrupt("an entry over 4 GiB".into()))?;
            body.extend_from_slice(&len.to_be_bytes());
            body.extend_from_slice(part);
        }
    }
    let header_line = std::cell::RefCell::new(Vec::new());
    let header_of = |key: &ArchiveKey| {
        let header = Header {
            format: FORMAT,
            created_at,
            bursar_version: env!("CARGO_PKG_VERSION").to_owned(),
            daemon_id: daemon_id.to_owned(),
            entries: entries.len() as u64,
            key: key.clone(),
        };
        let mut line = serde_json::to_vec(&header).expect("a header serialises");
        line.push(b'\n');
        *header_line.borrow_mut() = line.clone();
        aad(&line)
    };
    let (_, sealed) = keystore::seal_archive(passphrase, kdf, header_of, &body).map_err(BackupError::Keystore)?;
    let header_line = header_line.into_inner();
    let mut out = Vec::with_capacity(MAGIC.len() + header_line.len() + 12 + sealed.ciphertext.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header_line);
    out.extend_from_slice(&sealed.nonce);
    out.extend_from_slice(&sealed.ciphertext);
    Ok(out)
}

/// Reads the header only (no passphrase, no KDF).
pub fn header(archive: &[u8]) -> Result<Header, BackupError> {
    split(archive).map(|(header, _, _)| header)
}

/// Opens an archive: the header, then the entries, checked for consistency.
pub fn open(passphrase: &Passphrase, archive: &[u8]) -> Result<(Header, Entries), BackupError> {
    let (header, header_line, rest) = split(archive)?;
    let (nonce, ciphertext) = rest.split_at(12);
    let sealed = Sealed {
        nonce: nonce.try_into().expect("12 bytes"),
        ciphertext: ciphertext.to_vec(),
    };
    let body = keystore::open_archive(passphrase, &header.key, &aad(header_line), &sealed).map_err(|e| match e {
        KeystoreError::Corrupt => BackupError::DoesNotOpen,
        other => BackupError::Keystore(other),
    })?;
    let entries = decode_entries(&body)?;
    if entries.len() as u64 != header.entries {
        return Err(BackupError::Corrupt(format!(
            "{} entries, the header says {}",
            entries.len(),
            header.entries
        )));
    }
    for required in REQUIRED_KEYS {
        if !entries.iter().any(|(k, _)| k == required.as_bytes()) {
            return Err(BackupError::Corrupt(format!("no {required}")));
        }
    }
    if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BackupError::Corrupt("entries out of order or repeated".into()));
    }
    Ok((header, entries))
}

fn aad(header_line: &[u8]) -> Vec<u8> {
    [MAGIC, header_line].concat()
}

/// (header, its raw line, nonce + ciphertext).
fn split(archive: &[u8]) -> Result<(Header, &[u8], &[u8]), BackupError> {
    let rest = archive.strip_prefix(MAGIC).ok_or(BackupError::NotAnArchive)?;
    let end = rest
        .iter()
        .take(MAX_HEADER)
        .position(|b| *b == b'\n')
        .ok_or_else(|| BackupError::BadHeader("no header line".into()))?;
    let (line, rest) = rest.split_at(end + 1);
    let header: Header = serde_json::from_slice(line).map_err(|e| BackupError::BadHeader(e.to_string()))?;
    if header.format != FORMAT {
        return Err(BackupError::UnsupportedFormat(header.format));
    }
    // A GCM tag is 16 bytes; anything shorter after the nonce cannot be an archive.
    if rest.len() < 12 + 16 {
        return Err(BackupError::DoesNotOpen);
    }
    Ok((header, line, rest))
}

fn decode_entries(body: &[u8]) -> Result<Entries, BackupError> {
    fn take<'a>(body: &mut &'a [u8], what: &str) -> Result<&'a [u8], BackupError> {
        let short = || BackupError::Corrupt(format!("truncated {what}"));
        let (len, rest) = body.split_first_chunk::<4>().ok_or_else(short)?;
        let len = u32::from_be_bytes(*len) as usize;
        let part = rest.get(..len).ok_or_else(short)?;
        *body = &rest[len..];
        Ok(part)
    }
    let mut rest = body;
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let key = take(&mut rest, "key")?.to_vec();
        let value = take(&mut rest, "value")?.to_vec();
        if std::str::from_utf8(&key).is_err() {
            return Err(BackupError::Corrupt("a key that is not UTF-8".into()));
        }
        entries.push((key, value));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    const CHEAP: KdfParams = KdfParams {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    };

    fn entries() -> Entries {
        let mut e: Entries = REQUIRED_KEYS
            .iter()
            .map(|k| (k.as_bytes().to_vec(), b"{\"v\":1}".to_vec()))
            .collect();
        e.push((b"wallet/x".to_vec(), vec![0; 3000]));
        e.sort();
        e
    }

    #[test]
    fn an_archive_opens_with_its_passphrase_only_and_every_changed_byte_is_refused() {
        let pass = SecretString::from("a backup passphrase".to_owned());
        let archive = seal(&pass, CHEAP, &entries(), 1_700_000_000, "daemon-1").unwrap();
        let (header, opened) = open(&pass, &archive).unwrap();
        assert_eq!((header.entries, header.daemon_id.as_str()), (4, "daemon-1"));
        assert_eq!(opened, entries());
        assert!(
            !archive.windows(8).any(|w| w == b"wallet/x"),
            "the keys are not in clear"
        );
        let wrong = SecretString::from("another passphrase".to_owned());
        assert!(matches!(open(&wrong, &archive), Err(BackupError::DoesNotOpen)));
        // A byte of the header (bound as AAD), the nonce, the body and the tag.
        let header_at = MAGIC.len() + 20;
        for at in [header_at, archive.len() - 3000, archive.len() - 1] {
            let mut bad = archive.clone();
            bad[at] ^= 0x01;
            assert!(open(&pass, &bad).is_err(), "byte {at} changed and still opens");
        }
        assert!(matches!(open(&pass, b"tar archive"), Err(BackupError::NotAnArchive)));
        let truncated = &archive[..archive.len() - 20];
        assert!(matches!(open(&pass, truncated), Err(BackupError::DoesNotOpen)));
    }

    #[test]
    fn the_header_is_bounded_before_any_kdf_runs() {
        let mut absurd = MAGIC.to_vec();
        absurd.extend_from_slice(br#"{"format":1,"createdAt":0,"bursarVersion":"x","daemonId":"d","entries":1,"key":{"kdf":{"m_cost_kib":4194304,"t_cost":99,"p_cost":1},"salt":"00000000000000000000000000000000"}}"#);
        absurd.push(b'\n');
        absurd.extend_from_slice(&[0; 64]);
        let pass = SecretString::from("a backup passphrase".to_owned());
        assert!(matches!(
            open(&pass, &absurd),
            Err(BackupError::Keystore(KeystoreError::KdfOutOfBounds(_)))
        ));
        let mut long = MAGIC.to_vec();
        long.extend(std::iter::repeat_n(b' ', MAX_HEADER + 10));
        assert!(matches!(open(&pass, &long), Err(BackupError::BadHeader(_))));
    }
}
