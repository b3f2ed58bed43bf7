//! Unit tests of the keystore: sealing, unlocking, signing, re-sealing, integrity.

use super::*;

const FAST: KdfParams = KdfParams {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

fn pw(s: &str) -> Passphrase {
    Passphrase::from(s.to_owned())
}

struct Fixture {
    keys: Unlocked,
    meta: KeystoreMeta,
    chain: ChainName,
    wallet_id: WalletId,
    address: Address,
    sealed: Sealed,
}

fn fixture(kind: ChainKind) -> Fixture {
    let (keys, meta) = Unlocked::create(&pw("correct horse battery"), FAST).unwrap();
    let chain: ChainName = "anvil".parse().unwrap();
    let wallet_id = WalletId::new();
    let (address, sealed) = keys.generate_wallet_key(wallet_id, &chain, kind);
    Fixture {
        keys,
        meta,
        chain,
        wallet_id,
        address,
        sealed,
    }
}

impl Fixture {
    fn key_ref(&self) -> WalletKeyRef<'_> {
        WalletKeyRef {
            wallet_id: self.wallet_id,
            chain: &self.chain,
            address: self.address,
            sealed: &self.sealed,
        }
    }
}

#[test]
fn round_trip_unlock_and_sign_both_kinds() {
    let evm = fixture(ChainKind::Evm);
    let again = Unlocked::unlock(&evm.meta, &pw("correct horse battery")).unwrap();
    again.verify_wallet_key(evm.key_ref()).unwrap();
    let Signature::Secp256k1(sig) = again
        .sign(evm.key_ref(), &SigningPayload::Secp256k1Prehash([7u8; 32]))
        .unwrap()
    else {
        panic!("secp256k1 signature expected")
    };
    // Recover the signer and compare with the wallet's address.
    let recovered = alloy_primitives::Signature::from_scalars_and_parity(sig.r.into(), sig.s.into(), sig.y_parity)
        .recover_address_from_prehash(&[7u8; 32].into())
        .unwrap();
    assert_eq!(Address::Evm(recovered), evm.address);
    assert!(matches!(
        again.sign(evm.key_ref(), &SigningPayload::Ed25519Message(b"m".to_vec())),
        Err(KeystoreError::KindMismatch(_))
    ));

    let sol = fixture(ChainKind::Solana);
    let Signature::Ed25519(sig) = sol
        .keys
        .sign(sol.key_ref(), &SigningPayload::Ed25519Message(b"hello".to_vec()))
        .unwrap()
    else {
        panic!("ed25519 signature expected")
    };
    assert!(matches!(
        sol.keys
            .sign(sol.key_ref(), &SigningPayload::Secp256k1Prehash([7u8; 32])),
        Err(KeystoreError::KindMismatch(_))
    ));
    let Address::Solana(pk) = sol.address else {
        panic!("solana address expected")
    };
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).unwrap();
    vk.verify_strict(b"hello", &ed25519_dalek::Signature::from_bytes(&sig))
        .unwrap();
}

/// The scalar-only signing path gives exactly what k256's `SigningKey` gives (low S, the same
/// recovery bit), the first time a key is opened and every time after.
#[test]
fn evm_signatures_match_k256_signing_keys_byte_for_byte() {
    use sha2::Digest;
    let f = fixture(ChainKind::Evm);
    let aad = f.keys.wallet_aad(f.wallet_id, &f.chain, &f.address);
    let reference = k256::ecdsa::SigningKey::from_slice(&open(&f.keys.kek, &aad, &f.sealed).unwrap()).unwrap();
    let mut odd = 0;
    for i in 0u8..64 {
        let prehash: [u8; 32] = Sha256::digest([i]).into();
        let Signature::Secp256k1(sig) = f
            .keys
            .sign(f.key_ref(), &SigningPayload::Secp256k1Prehash(prehash))
            .unwrap()
        else {
            panic!("secp256k1 signature expected")
        };
        let (want, recid) = reference.sign_prehash_recoverable(&prehash).unwrap();
        let (r, s) = want.split_bytes();
        assert_eq!(
            (sig.r, sig.s, sig.y_parity),
            (r.into(), s.into(), recid.is_y_odd()),
            "prehash {i}"
        );
        odd += usize::from(sig.y_parity);
    }
    assert!((10..54).contains(&odd), "both parities seen: {odd} odd of 64");
}

/// A key that authenticates under a wallet's header but does not derive its address (a
/// keystore bug, or a forgery by someone holding the KEK) is refused at every open: only a key
/// that passed the check is remembered as checked.
#[test]
fn a_sealed_key_of_another_address_is_refused_every_time() {
    let f = fixture(ChainKind::Evm);
    let aad = f.keys.wallet_aad(f.wallet_id, &f.chain, &f.address);
    let foreign = seal(&f.keys.kek, &aad, &random_bytes::<32>());
    let key = WalletKeyRef {
        sealed: &foreign,
        ..f.key_ref()
    };
    for _ in 0..3 {
        assert!(matches!(f.keys.verify_wallet_key(key), Err(KeystoreError::Corrupt)));
        assert!(matches!(
            f.keys.sign(key, &SigningPayload::Secp256k1Prehash([1; 32])),
            Err(KeystoreError::Corrupt)
        ));
    }
    f.keys.verify_wallet_key(f.key_ref()).unwrap();
    f.keys
        .sign(f.key_ref(), &SigningPayload::Secp256k1Prehash([1; 32]))
        .unwrap();
    assert!(matches!(f.keys.verify_wallet_key(key), Err(KeystoreError::Corrupt)));
}

#[test]
fn wrong_password_is_refused() {
    let f = fixture(ChainKind::Evm);
    assert!(matches!(
        Unlocked::unlock(&f.meta, &pw("wrong")),
        Err(KeystoreError::WrongPassword)
    ));
    assert!(f.keys.check_master(b"correct horse battery"));
    assert!(!f.keys.check_master(b"correct horse batter"));
    assert!(!f.keys.check_master(b""));
}

#[test]
fn flipping_any_byte_of_ciphertext_or_nonce_is_detected() {
    let f = fixture(ChainKind::Evm);
    for idx in 0..f.sealed.ciphertext.len() {
        let mut sealed = f.sealed.clone();
        sealed.ciphertext[idx] ^= 0x01;
        let key = WalletKeyRef {
            sealed: &sealed,
            ..f.key_ref()
        };
        assert!(
            matches!(f.keys.verify_wallet_key(key), Err(KeystoreError::Corrupt)),
            "ciphertext byte {idx}"
        );
    }
    for idx in 0..12 {
        let mut sealed = f.sealed.clone();
        sealed.nonce[idx] ^= 0x80;
        let key = WalletKeyRef {
            sealed: &sealed,
            ..f.key_ref()
        };
        assert!(
            matches!(f.keys.verify_wallet_key(key), Err(KeystoreError::Corrupt)),
            "nonce byte {idx}"
        );
    }
}

#[test]
fn header_fields_are_bound_as_aad() {
    let f = fixture(ChainKind::Evm);
    let other_chain: ChainName = "mainnet".parse().unwrap();
    let tampered = [
        WalletKeyRef {
            wallet_id: WalletId::new(),
            ..f.key_ref()
        },
        WalletKeyRef {
            chain: &other_chain,
            ..f.key_ref()
        },
    ];
    for key in tampered {
        assert!(matches!(f.keys.verify_wallet_key(key), Err(KeystoreError::Corrupt)));
    }
    // Tampering the keystore header (KDF params, salt, version) breaks every key too.
    for mutate in [
        (|m: &mut KeystoreMeta| m.salt[0] ^= 1) as fn(&mut KeystoreMeta),
        |m| m.kdf.t_cost += 1,
        |m| m.verifier.ciphertext[0] ^= 1,
    ] {
        let mut meta = f.meta.clone();
        mutate(&mut meta);
        assert!(matches!(
            Unlocked::unlock(&meta, &pw("correct horse battery")),
            Err(KeystoreError::WrongPassword)
        ));
    }
    let mut meta = f.meta.clone();
    meta.version = 9;
    assert!(matches!(
        Unlocked::unlock(&meta, &pw("correct horse battery")),
        Err(KeystoreError::UnsupportedVersion(9))
    ));
}

#[test]
fn address_swap_is_detected() {
    let a = fixture(ChainKind::Evm);
    let (b_address, _) = a.keys.generate_wallet_key(WalletId::new(), &a.chain, ChainKind::Evm);
    let swapped = WalletKeyRef {
        address: b_address,
        ..a.key_ref()
    };
    assert!(matches!(a.keys.verify_wallet_key(swapped), Err(KeystoreError::Corrupt)));
    assert!(
        a.keys
            .sign(swapped, &SigningPayload::Secp256k1Prehash([1; 32]))
            .is_err()
    );
    // Another wallet's sealed key under this wallet's header: refused as well.
    let b_id = WalletId::new();
    let (_, b_sealed) = a.keys.generate_wallet_key(b_id, &a.chain, ChainKind::Evm);
    let foreign = WalletKeyRef {
        sealed: &b_sealed,
        ..a.key_ref()
    };
    assert!(matches!(a.keys.verify_wallet_key(foreign), Err(KeystoreError::Corrupt)));
}

#[test]
fn absurd_kdf_parameters_are_refused_before_deriving() {
    let f = fixture(ChainKind::Evm);
    for kdf in [
        KdfParams {
            m_cost_kib: u32::MAX,
            t_cost: 3,
            p_cost: 4,
        },
        KdfParams {
            m_cost_kib: 65536,
            t_cost: 1_000_000,
            p_cost: 4,
        },
        KdfParams {
            m_cost_kib: 65536,
            t_cost: 3,
            p_cost: 255,
        },
        KdfParams {
            m_cost_kib: 65536,
            t_cost: 0,
            p_cost: 4,
        },
        KdfParams {
            m_cost_kib: 1,
            t_cost: 1,
            p_cost: 1,
        },
        // Just past the read bounds: 1 GiB of memory, 10 passes.
        KdfParams {
            m_cost_kib: 1024 * 1024 + 1,
            t_cost: 3,
            p_cost: 4,
        },
        KdfParams {
            m_cost_kib: 65536,
            t_cost: 11,
            p_cost: 4,
        },
    ] {
        // Refused by the bound check itself, before any derivation is attempted.
        assert!(
            matches!(kdf.check_bounds(), Err(KeystoreError::KdfOutOfBounds(_))),
            "{kdf:?}"
        );
        let meta = KeystoreMeta { kdf, ..f.meta.clone() };
        assert!(
            matches!(
                Unlocked::unlock(&meta, &pw("correct horse battery")),
                Err(KeystoreError::KdfOutOfBounds(_))
            ),
            "{kdf:?}"
        );
    }
    assert!(KdfParams::RECOMMENDED.check_bounds().is_ok());
    // Every bound is inclusive: the largest accepted values pass, together and each.
    let at_bounds = KdfParams {
        m_cost_kib: 1024 * 1024,
        t_cost: 10,
        p_cost: 16,
    };
    assert!(at_bounds.check_bounds().is_ok());
    // Memory is at least 8 KiB per lane (Argon2's own floor), exactly.
    let memory = |m_cost_kib| KdfParams {
        m_cost_kib,
        t_cost: 1,
        p_cost: 4,
    };
    assert!(memory(32).check_bounds().is_ok());
    assert!(matches!(
        memory(31).check_bounds(),
        Err(KeystoreError::KdfOutOfBounds(_))
    ));
    // RFC 9106's second recommended option, exactly: 64 MiB, 3 passes, 4 lanes.
    assert_eq!(
        KdfParams::RECOMMENDED,
        KdfParams {
            m_cost_kib: 65_536,
            t_cost: 3,
            p_cost: 4
        }
    );
    assert!(!KdfParams::RECOMMENDED.is_weak());
    assert!(FAST.is_weak());
    // Weak when either cost is below the recommendation; more of both is not weak.
    let rec = KdfParams::RECOMMENDED;
    assert!(KdfParams { t_cost: 1, ..rec }.is_weak());
    assert!(
        KdfParams {
            m_cost_kib: 1024,
            ..rec
        }
        .is_weak()
    );
    assert!(
        !KdfParams {
            m_cost_kib: 2 * rec.m_cost_kib,
            t_cost: rec.t_cost + 1,
            ..rec
        }
        .is_weak()
    );
}

#[test]
fn reseal_moves_keys_to_a_new_password() {
    let f = fixture(ChainKind::Solana);
    let (new_keys, new_meta) = Unlocked::create(&pw("another password!"), FAST).unwrap();
    let resealed = f.keys.reseal_wallet_key(f.key_ref(), &new_keys).unwrap();
    let moved = WalletKeyRef {
        sealed: &resealed,
        ..f.key_ref()
    };
    let reopened = Unlocked::unlock(&new_meta, &pw("another password!")).unwrap();
    reopened.verify_wallet_key(moved).unwrap();
    assert!(
        f.keys.verify_wallet_key(moved).is_err(),
        "old KEK must not open the new seal"
    );

    let jwt = f.keys.seal_secret("jwt", b"0123456789abcdef0123456789abcdef");
    let jwt2 = f.keys.reseal_secret("jwt", &jwt, &new_keys).unwrap();
    assert_eq!(
        &reopened.open_secret("jwt", &jwt2).unwrap()[..],
        b"0123456789abcdef0123456789abcdef"
    );
    assert!(reopened.open_secret("other", &jwt2).is_err(), "purpose is bound");
}

#[test]
fn debug_output_is_redacted() {
    let f = fixture(ChainKind::Evm);
    assert_eq!(format!("{:?}", f.keys), "Unlocked([REDACTED])");
    let p = pw("hunter2hunter2");
    assert!(!format!("{p:?}").contains("hunter2"));
}

/// A store created before keyed audit chains has the plain verifier: it unlocks, says its
/// chain is not keyed yet, and is marked once (the mark needs the KEK, so it cannot be
/// removed to pass a rewritten chain off as legacy).
#[test]
fn a_keystore_from_before_keyed_audit_chains_unlocks_and_is_marked_once() {
    let password = pw("correct horse battery");
    let (keys, mut meta) = Unlocked::create(&password, FAST).unwrap();
    assert!(keys.audit_keyed(), "new keystores are keyed from the start");
    meta.verifier = seal(&keys.kek, &meta_aad(&meta), VERIFIER_PLAINTEXT);
    let mut legacy = Unlocked::unlock(&meta, &password).unwrap();
    assert!(!legacy.audit_keyed());
    let marked = legacy.mark_audit_keyed();
    assert!(legacy.audit_keyed());
    assert!(Unlocked::unlock(&marked, &password).unwrap().audit_keyed());
    assert!(matches!(
        Unlocked::unlock(&marked, &pw("wrong horse battery")),
        Err(KeystoreError::WrongPassword)
    ));
}

#[test]
fn the_audit_key_opens_only_for_its_purpose_and_survives_a_reseal() {
    let (keys, _) = Unlocked::create(&pw("correct horse battery"), FAST).unwrap();
    let (key, sealed) = keys.new_audit_key("audit-chain/3");
    let opened = keys.open_audit_key("audit-chain/3", &sealed).unwrap();
    assert_eq!(key.mac(&[b"entry"]), opened.mac(&[b"entry"]));
    assert_ne!(key.mac(&[b"entry"]), key.mac(&[b"entrY"]));
    assert!(
        keys.open_audit_key("audit-chain/1", &sealed).is_err(),
        "the switch point is bound"
    );
    let (next, _) = Unlocked::create(&pw("another password!"), FAST).unwrap();
    let resealed = keys.reseal_secret("audit-chain/3", &sealed, &next).unwrap();
    let reopened = next.open_audit_key("audit-chain/3", &resealed).unwrap();
    assert_eq!(key.mac(&[b"entry"]), reopened.mac(&[b"entry"]));
    assert_eq!(format!("{key:?}"), "AuditKey([REDACTED])");
}

#[test]
fn opens_with_tells_right_from_wrong_passwords() {
    let f = fixture(ChainKind::Evm);
    assert!(f.meta.opens_with(&pw("correct horse battery")).unwrap());
    assert!(!f.meta.opens_with(&pw("wrong horse battery")).unwrap());
    let absurd = KeystoreMeta {
        kdf: KdfParams {
            m_cost_kib: u32::MAX,
            t_cost: 3,
            p_cost: 4,
        },
        ..f.meta.clone()
    };
    assert!(matches!(
        absurd.opens_with(&pw("correct horse battery")),
        Err(KeystoreError::KdfOutOfBounds(_))
    ));
}

#[test]
fn a_wallet_key_never_opens_as_a_daemon_secret() {
    // A purpose spelled like the wallet's own AAD fields still names another kind of value.
    let f = fixture(ChainKind::Evm);
    let lookalike = format!(
        "{}\0{}\0{}\0{}",
        f.wallet_id,
        f.chain.as_str(),
        f.address.kind().as_str(),
        f.address
    );
    assert!(matches!(
        f.keys.open_secret(&lookalike, &f.sealed),
        Err(KeystoreError::Corrupt)
    ));
    assert!(f.keys.verify_wallet_key(f.key_ref()).is_ok());
}

#[test]
fn sealed_values_are_bound_to_the_keystore_header_not_only_to_the_key() {
    // The same KEK under another header (version, cost, salt) opens nothing sealed before.
    let f = fixture(ChainKind::Evm);
    let secret = f.keys.seal_secret("jwt", b"the session secret");
    let copy = |edit: fn(&mut KeystoreMeta)| {
        let mut meta = f.meta.clone();
        edit(&mut meta);
        Unlocked {
            kek: SecretBox::new(Box::new(*f.keys.kek.expose_secret())),
            auth_key: SecretBox::new(Box::new(*f.keys.auth_key.expose_secret())),
            master_tag: f.keys.master_tag,
            meta,
            audit_keyed: f.keys.audit_keyed,
            checked: Default::default(),
        }
    };
    let same = copy(|_| {});
    assert_eq!(&same.open_secret("jwt", &secret).unwrap()[..], b"the session secret");
    assert!(same.verify_wallet_key(f.key_ref()).is_ok());
    for edit in [
        (|m: &mut KeystoreMeta| m.version += 1) as fn(&mut KeystoreMeta),
        |m| m.kdf.t_cost += 1,
        |m| m.salt[0] ^= 1,
    ] {
        let other = copy(edit);
        assert!(matches!(other.open_secret("jwt", &secret), Err(KeystoreError::Corrupt)));
        assert!(matches!(
            other.verify_wallet_key(f.key_ref()),
            Err(KeystoreError::Corrupt)
        ));
    }
}
