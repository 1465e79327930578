//! The protocol suite (`tests/protocol`) compiled a third time and run on
//! `--store s3` with `--database-url postgres://…`: every test gets a
//! private Garage and a private PostgreSQL (see `common::on_s3` and
//! `common::on_postgres`), so each rule of TUS and of Spool's API holds on
//! the scale-out engines exactly as on the filesystem and SQLite.

#[path = "protocol/main.rs"]
mod suite;
