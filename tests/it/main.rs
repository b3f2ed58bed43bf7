//! The one integration-test binary: the real `bursar` binary, a real anvil node, temp data
//! dirs. Modules by capability.

mod harness;

#[cfg(feature = "fake-chain")]
mod adapter;
mod approval_page;
mod audit;
mod backup;
mod balance;
mod browser;
mod channels;
mod cli;
#[cfg(feature = "test-faults")]
mod crash;
mod doctor;
mod examples;
mod fees;
mod history;
mod hostile;
mod http;
mod hygiene;
mod inputs;
mod mcp;
mod mcp_conformance;
mod mcp_limits;
mod mcp_renew;
mod mcp_robust;
mod mcp_rust;
mod mcp_sse;
mod metrics;
mod notify;
mod operator;
mod owner;
mod prices;
mod promises;
mod rotation;
mod routes;
mod rpc_proxy;
mod schemas;
mod sessions;
#[cfg(feature = "solana")]
mod solana;
mod tidy;
#[cfg(feature = "test-faults")]
mod transfer_crash;
mod transfers;
