//! Micro-benchmarks of the hot and the deliberate paths: unlock (Argon2id at the
//! recommended cost), signing through the keystore (decrypt → re-derive → sign → zeroize),
//! session-token verification, AES-256-GCM open, and a durable store commit.
//! Run: `cargo bench --bench core`.

use bursar::domain::{ChainKind, ChainName, SessionId, WalletId};
use bursar::keystore::{KdfParams, Unlocked, WalletKeyRef};
use bursar::secret::Passphrase;
use bursar::session::{self, SessionKeys};
use bursar::store::records::{RECORD_VERSION, SessionRecord};
use bursar::store::{Batch, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn keystore(c: &mut Criterion) {
    let password = Passphrase::from("benchmark master password".to_owned());
    let (_, meta) = Unlocked::create(&password, KdfParams::RECOMMENDED).unwrap();
    let mut g = c.benchmark_group("keystore");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("unlock_argon2id_64MiB_t3_p4", |b| {
        b.iter(|| Unlocked::unlock(black_box(&meta), &password).unwrap())
    });
    g.finish();

    let keys = Unlocked::unlock(&meta, &password).unwrap();
    let chain: ChainName = "anvil".parse().unwrap();
    let (evm_id, sol_id) = (WalletId::new(), WalletId::new());
    let (evm_addr, evm_sealed) = keys.generate_wallet_key(evm_id, &chain, ChainKind::Evm);
    let (sol_addr, sol_sealed) = keys.generate_wallet_key(sol_id, &chain, ChainKind::Solana);
    let evm = WalletKeyRef {
        wallet_id: evm_id,
        chain: &chain,
        address: evm_addr,
        sealed: &evm_sealed,
    };
    let sol = WalletKeyRef {
        wallet_id: sol_id,
        chain: &chain,
        address: sol_addr,
        sealed: &sol_sealed,
    };
    let jwt = keys.seal_secret("jwt", &[7u8; 32]);
    let mut g = c.benchmark_group("keystore");
    g.bench_function("sign_secp256k1", |b| {
        b.iter(|| keys.sign_evm_prehash(evm, black_box(&[9u8; 32])).unwrap())
    });
    g.bench_function("sign_ed25519", |b| {
        b.iter(|| {
            keys.sign_ed25519(sol, black_box(b"a solana message of moderate size"))
                .unwrap()
        })
    });
    g.bench_function("aes256gcm_open_secret", |b| {
        b.iter(|| keys.open_secret("jwt", black_box(&jwt)).unwrap())
    });
    g.bench_function("check_master_password", |b| {
        b.iter(|| keys.check_master(black_box(b"benchmark master password")))
    });
    g.finish();
}

fn sessions(c: &mut Criterion) {
    let keys = SessionKeys::new(&[3u8; 32], "bench-daemon");
    let (sid, wid) = (SessionId::new(), WalletId::new());
    let now = 1_800_000_000;
    let minted = keys.mint(sid, wid, now, now + 3600);
    let record = SessionRecord {
        v: RECORD_VERSION,
        id: sid,
        wallet_id: wid,
        created_at: now,
        expires_at: now + 3600,
        absolute_expires_at: now + 86400,
        ttl_seconds: 3600,
        max_renewals: 10,
        renewals: 0,
        revoked_at: None,
        token_hash: minted.token_hash.clone(),
        jti: minted.jti.clone(),
    };
    c.bench_function("session/verify_hs256_and_record", |b| {
        b.iter(|| {
            let (claims, _) = keys.decode(black_box(&minted.token)).unwrap();
            session::verify_record(&record, &claims, &minted.token, now + 1).unwrap();
        })
    });
    c.bench_function("session/mint", |b| b.iter(|| keys.mint(sid, wid, now, now + 3600)));
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut n = 0u64;
    let mut g = c.benchmark_group("store");
    g.sample_size(30);
    g.bench_function("sled_commit_put_and_flush", |b| {
        b.iter(|| {
            n += 1;
            let mut batch = Batch::new();
            batch.put(format!("bench/{n}"), &n);
            store.commit(batch).unwrap();
        })
    });
    g.bench_function("sled_get", |b| {
        b.iter(|| store.get::<u64>(black_box("bench/1")).unwrap())
    });
    g.finish();
}

criterion_group!(benches, keystore, sessions, store);
criterion_main!(benches);
