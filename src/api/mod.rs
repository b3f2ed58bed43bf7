//! The network edges: REST (axum) and MCP (rmcp, over stdio, streamable HTTP and legacy SSE). Transport,
//! auth extraction and error mapping only; every rule lives behind `Service`.

pub mod dto;
pub mod error;
pub mod extract;
pub mod listen;
pub mod mcp;
pub mod mcp_http;
pub mod mcp_sse;
pub mod openapi;
pub mod page;
pub mod rest;
pub mod server;
pub mod state;
