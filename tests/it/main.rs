//! The one integration-test binary: the real `bursar` binary, a real anvil node, temp data
//! dirs. Modules by capability.

mod harness;

mod balance;
mod browser;
mod cli;
mod crash;
mod examples;
mod http;
mod hygiene;
mod inputs;
mod mcp;
mod mcp_conformance;
mod mcp_renew;
mod mcp_robust;
mod mcp_rust;
mod mcp_sse;
mod notify;
mod owner;
mod prices;
mod routes;
mod schemas;
mod sessions;
mod tidy;
#[cfg(feature = "test-faults")]
mod transfer_crash;
mod transfers;
