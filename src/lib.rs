//! bursar: a self-hosted wallet daemon for AI agents. Agents hold a session token, never a
//! key; every value-moving call passes the owner's policy before anything is signed.
//!
//! Modules in reading order: the vocabulary, secrets, the keystore and store underneath,
//! sessions and chains beside them, the service that orchestrates them, and the edges.

pub mod clock;
pub mod domain;
pub mod owner;
pub mod policy;
pub mod secret;

pub mod backup;
pub mod config;
pub mod keystore;
pub mod store;

pub mod chains;
pub mod prices;
pub mod session;

pub mod faults;
pub mod metrics;
pub mod notify;
pub mod service;
pub mod tls;

pub mod api;
pub mod cli;
pub mod memory;
pub mod telemetry;
