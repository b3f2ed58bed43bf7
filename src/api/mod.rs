//! The network edges: REST (axum) today, MCP next. Transport, auth extraction and error
//! mapping only; every rule lives behind `Service`.

pub mod dto;
pub mod error;
pub mod rest;
pub mod server;
