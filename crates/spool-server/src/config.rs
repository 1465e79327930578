//! The server's configuration, read once and validated: every field has its
//! default here, in one place, and the CLI maps flags and environment
//! variables onto it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use spool_proto::webhook::WebhookSecret;

/// API credentials for HTTP Basic auth on the upload API.
#[derive(Clone)]
pub struct Credentials {
    pub token_id: String,
    pub token_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token_id", &self.token_id)
            .field("token_secret", &"<redacted>")
            .finish()
    }
}

/// Where signed webhooks go.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: url::Url,
    pub secret: WebhookSecret,
}

/// Everything `spool serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the uploaded bytes.
    pub data_dir: PathBuf,
    /// Base URL clients reach the server at (for upload and share URLs);
    /// `None` derives it from the bound address.
    pub public_url: Option<url::Url>,
    /// API credentials; `None` loads them from the data directory, or
    /// generates and stores them on first start.
    pub credentials: Option<Credentials>,
    /// Webhook endpoint; `None` sends no webhooks.
    pub webhook: Option<WebhookConfig>,
    /// The largest upload accepted, in bytes (`Tus-Max-Size`).
    pub max_size: u64,
    /// How long a freshly issued upload URL may wait for its first byte.
    pub upload_ttl: Duration,
    /// An unfinished upload with no bytes arriving for this long expires.
    pub upload_expiry: Duration,
    /// A request body that delivers no bytes for this long is cut off (what
    /// arrived is saved).
    pub idle_timeout: Duration,
    /// A writer that has received nothing for this long is considered
    /// stalled: a newer PATCH for the same upload interrupts it instead of
    /// getting 423.
    pub stall_grace: Duration,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// Bytes kept free on the volume holding the uploads: a chunk that would
    /// cross this answers 507 and is not stored. `None`: 1 GiB or 5 % of the
    /// volume, whichever is smaller (see [`crate::space`]); 0: none.
    pub min_free_space: Option<u64>,
}

/// Defaults, in one place.
pub mod defaults {
    use std::time::Duration;
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const DATA_DIR: &str = ".spool/data";
    pub const MAX_SIZE: u64 = 64 * 1024 * 1024 * 1024;
    pub const UPLOAD_TTL: Duration = Duration::from_secs(600);
    pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const STALL_GRACE: Duration = Duration::from_secs(3);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Config {
    /// A configuration with every default, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: data_dir.into(),
            public_url: None,
            credentials: None,
            webhook: None,
            max_size: defaults::MAX_SIZE,
            upload_ttl: defaults::UPLOAD_TTL,
            upload_expiry: defaults::UPLOAD_EXPIRY,
            idle_timeout: defaults::IDLE_TIMEOUT,
            stall_grace: defaults::STALL_GRACE,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            min_free_space: None,
        }
    }
}
