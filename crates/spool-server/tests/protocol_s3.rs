//! The protocol suite (`tests/protocol`) compiled a second time and run
//! on `--store s3`: every test gets a private Garage (see
//! `common::on_s3`), so each rule of TUS and of Spool's API is checked on
//! the object store exactly as on the filesystem.

#[path = "protocol/main.rs"]
mod suite;
