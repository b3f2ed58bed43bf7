//! The shared adapter suite (`bursar::chains::testing::suite`) against the EVM adapter on a
//! real anvil node: the same behaviours the fake chain passes in the unit tests.

use crate::harness::Anvil;
use alloy_primitives::U256;
use bursar::chains::testing::{self, suite};
use bursar::chains::{Adapter, Chains};
use bursar::domain::Address;
use serde_json::json;

struct AnvilDriver<'a>(&'a Anvil);

impl suite::Driver for AnvilDriver<'_> {
    async fn fund(&mut self, owner: Address, amount: U256) {
        self.0.fund(&owner.to_string(), amount).await;
    }
    async fn mine(&mut self) {
        self.0.rpc("evm_mine", json!([])).await;
    }
    async fn set_automine(&mut self, on: bool) {
        self.0.rpc("evm_setAutomine", json!([on])).await;
    }
}

#[tokio::test]
async fn the_evm_adapter_passes_the_adapter_suite_on_anvil() {
    let anvil = Anvil::start().await;
    let config = testing::config("anvil", Some(&anvil.url), "");
    let chains = Chains::new(vec![config]).expect("chains");
    let adapter = chains.get(&"anvil".parse().unwrap()).expect("configured");
    assert!(matches!(adapter, Adapter::Evm(_)));
    suite::run(adapter, &mut AnvilDriver(&anvil)).await;
}

/// The Solana validator as the suite's node: funds by airdrop; it cannot hold slots back.
#[cfg(feature = "solana")]
struct ValidatorDriver<'a>(&'a crate::solana::Validator);

#[cfg(feature = "solana")]
impl suite::Driver for ValidatorDriver<'_> {
    async fn fund(&mut self, owner: Address, amount: U256) {
        crate::solana::airdrop(&self.0.url, &owner.to_string(), u64::try_from(amount).unwrap()).await;
    }
    fn can_hold_blocks(&self) -> bool {
        false
    }
    async fn mine(&mut self) {
        unreachable!("a validator cannot hold blocks")
    }
    async fn set_automine(&mut self, _on: bool) {
        unreachable!("a validator cannot hold blocks")
    }
}

#[cfg(feature = "solana")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_solana_adapter_passes_the_adapter_suite_on_the_validator() {
    let validator = crate::solana::Validator::shared().await;
    let text = format!("[chains.sol]\nkind = \"solana\"\nrpc_url = \"{}\"\n", validator.url);
    let (config, _) =
        bursar::config::Config::from_parts(std::path::Path::new("config.toml"), &text, Vec::new()).expect("config");
    let chains = Chains::new(config.chains().expect("chains")).expect("chains");
    let adapter = chains.get(&"sol".parse().unwrap()).expect("configured");
    assert!(matches!(adapter, Adapter::Solana(_)));
    suite::run(adapter, &mut ValidatorDriver(validator)).await;
}
