//! The session's public vocabulary: where an upload goes ([`Target`]), how
//! it is sent ([`Options`], [`Checksum`]), and what it reports while it runs
//! ([`State`], [`Status`], [`Event`]) and when it is done ([`Completed`]);
//! the journal's records of targets and options are made here too.

use std::time::Duration;

use serde::Serialize;

use crate::journal::{OptionsRecord, TargetRecord};
use crate::policy::RetryPolicy;
use crate::tus::Timeouts;
use crate::wire::Protocol;

/// Where uploads are created.
#[derive(Clone)]
pub enum Target {
    /// Spool's upload API (`POST /v1/on-demand` with API credentials).
    OnDemand {
        server: String,
        token_id: String,
        token_secret: String,
    },
    /// Any creation endpoint (TUS with `Upload-Defer-Length: 1`, or the
    /// IETF draft), with extra headers for its requests.
    Endpoint {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// An existing upload URL.
    UploadUrl(String),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::OnDemand {
                server, token_id, ..
            } => write!(f, "OnDemand({server}, {token_id}, <secret>)"),
            Target::Endpoint { url, .. } => write!(f, "Endpoint({url})"),
            Target::UploadUrl(_) => f.write_str("UploadUrl(<signed>)"),
        }
    }
}

impl Target {
    pub(crate) fn record(&self) -> TargetRecord {
        match self {
            Target::OnDemand {
                server, token_id, ..
            } => TargetRecord::OnDemand {
                server: server.clone(),
                token_id: token_id.clone(),
            },
            Target::Endpoint { url, .. } => TargetRecord::Endpoint { url: url.clone() },
            Target::UploadUrl(_) => TargetRecord::Attached,
        }
    }
}

/// Checksum algorithm for `Upload-Checksum`: the wire's own type, so the
/// names the client sends and journals are the ones the server parses.
pub use spool_proto::checksum::ChecksumAlgorithm as Checksum;

/// Session options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fixed chunk size; `None` adapts to throughput.
    pub chunk_size: Option<u64>,
    /// The smallest non-final PATCH the server accepts (e.g. 5 MiB for S3-backed servers).
    pub min_chunk: u64,
    pub checksum: Option<Checksum>,
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    /// Metadata for a created upload (asset metadata on Spool, Upload-Metadata elsewhere).
    pub metadata: Vec<(String, String)>,
    /// TUS, the IETF draft, or whichever the server speaks (the draft first).
    pub protocol: Protocol,
}

impl Options {
    pub(crate) fn record(&self) -> OptionsRecord {
        OptionsRecord {
            chunk_size: self.chunk_size,
            min_chunk: self.min_chunk,
            checksum: self.checksum.map(|c| c.as_str().to_owned()),
            stall_timeout_secs: Some(self.timeouts.no_progress.as_secs().max(1)),
            protocol: Some(self.protocol.as_str().to_owned()),
        }
    }

    /// Options restored from the journal, with default policies.
    pub fn from_record(r: &OptionsRecord) -> Options {
        let mut options = Options {
            chunk_size: r.chunk_size,
            min_chunk: r.min_chunk,
            checksum: r.checksum.as_deref().and_then(Checksum::parse),
            protocol: r
                .protocol
                .as_deref()
                .and_then(Protocol::parse)
                .unwrap_or_default(),
            ..Options::default()
        };
        if let Some(s) = r.stall_timeout_secs {
            options.timeouts.no_progress = Duration::from_secs(s.max(1));
        }
        options
    }
}

/// The session's state, as a UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Uploading,
    Reconnecting,
    Stalled,
    Complete,
    Failed,
}

/// What the session reports; `confirmed` and `sent` never decrease.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: State,
    /// Bytes the server acknowledged (its Upload-Offset).
    pub confirmed: u64,
    /// Bytes handed to the network.
    pub sent: u64,
    /// Bytes queued so far.
    pub produced: u64,
    /// The total, once the producer finished.
    pub total: Option<u64>,
    pub attempt: u32,
    pub next_retry_in_ms: Option<u64>,
    pub last_error: Option<String>,
    /// The share link, once the server created the upload (from Start).
    pub share_url: Option<String>,
}

/// Events for a consumer (the CLI's `--json` lines, the app's UI).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The upload exists on the server (at Start): its asset and share link
    /// can be handed out now. Never carries the signed upload URL.
    Created {
        asset_id: Option<String>,
        share_url: Option<String>,
    },
    Progress {
        confirmed: u64,
        sent: u64,
        total: Option<u64>,
    },
    Reconnecting {
        attempt: u32,
        retry_in_ms: u64,
        error: String,
    },
    Stalled {
        error: String,
    },
    /// The upload was gone from the server (expired or deleted); a new one
    /// was created and every byte is being sent again from local disk.
    Recreated {
        reason: String,
    },
    Complete {
        upload_url: String,
        asset_id: Option<String>,
        share_url: Option<String>,
        bytes: u64,
        sha256: String,
    },
}

/// A finished upload.
#[derive(Debug, Clone)]
pub struct Completed {
    pub upload_url: String,
    pub asset_id: Option<String>,
    pub share_url: Option<String>,
    pub bytes: u64,
    /// The SHA-256 (hex) of every byte of the upload.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_survive_the_journal() {
        let mut o = Options {
            chunk_size: Some(1 << 20),
            min_chunk: 5 << 20,
            checksum: Some(Checksum::Sha1),
            protocol: Protocol::Tus,
            ..Options::default()
        };
        o.timeouts.no_progress = Duration::from_secs(7);
        let back = Options::from_record(&o.record());
        assert_eq!(
            (
                back.chunk_size,
                back.min_chunk,
                back.checksum,
                back.protocol
            ),
            (o.chunk_size, o.min_chunk, o.checksum, o.protocol)
        );
        assert_eq!(back.timeouts.no_progress, Duration::from_secs(7));
        // A journal written before the timeout was recorded still loads.
        let old: OptionsRecord =
            serde_json::from_str(r#"{"chunk_size":null,"min_chunk":0,"checksum":null}"#).unwrap();
        assert_eq!(
            Options::from_record(&old).timeouts.no_progress,
            Timeouts::default().no_progress
        );
        // ... and, from before the draft, discovers the protocol.
        assert_eq!(Options::from_record(&old).protocol, Protocol::Auto);
    }
}
