//! The network edges: REST (axum) and MCP (rmcp, over stdio and streamable HTTP). Transport,
//! auth extraction and error mapping only; every rule lives behind `Service`.

pub mod dto;
pub mod error;
pub mod mcp;
pub mod openapi;
pub mod rest;
pub mod server;
