//! Spool's wire rules, shared by the upload client and the upload server so
//! that both sides agree byte for byte. [`error::ErrorCode`] is the one list of
//! stable `ERR_*` codes with their HTTP statuses; [`tus`] holds the TUS 1.0.0
//! header names and the parsers for their values; [`ietf`] the same for the
//! IETF draft that succeeds it (Resumable Uploads for HTTP), with the
//! differences between its interop versions in one place; [`checksum`] the checksum
//! extension's algorithms and hashers; [`metadata`] is the `Upload-Metadata`
//! codec and the metadata key rule; [`ondemand`] the signed-URL answer of
//! `POST /v1/on-demand`; [`token`] signs and verifies the upload URLs that
//! scope a recorder to one upload; [`webhook`] signs deliveries in the Standard
//! Webhooks format; [`retry`] parses `Retry-After` and [`backoff`] is the retry
//! delay formula. Nothing here performs I/O.

pub mod backoff;
pub mod checksum;
pub mod error;
pub mod ietf;
pub mod metadata;
pub mod ondemand;
pub mod retry;
pub mod token;
pub mod tus;
pub mod webhook;

pub use error::{ErrorBody, ErrorCode};
