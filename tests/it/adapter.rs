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
