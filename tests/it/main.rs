//! The one integration-test binary: the real `bursar` binary, a real anvil node, temp data
//! dirs. Modules by capability.

mod harness;

mod approval_page;
mod audit;
mod balance;
mod browser;
mod cli;
#[cfg(feature = "test-faults")]
mod crash;
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
mod notify;
mod operator;
mod owner;
mod prices;
mod promises;
mod routes;
mod rpc_proxy;
mod schemas;
mod sessions;
mod tidy;
#[cfg(feature = "test-faults")]
mod transfer_crash;
mod transfers;
