//! Protocol tests of the router without a socket: one test per rule of the
//! TUS 1.0.0 text and of Spool's upload API, each on its own data directory,
//! one module per TUS extension (and per concern of Spool's own API).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod api;
mod checksum;
mod concatenation;
mod core;
mod creation;
mod creation_defer_length;
mod creation_with_upload;
mod downloads;
mod durability;
mod expiration;
mod hostile;
mod signatures;
mod termination;
