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
    /// Where expiry, signed-URL lifetimes and the stall test read the
    /// time: the system clock, or a [`ManualClock`](crate::clock::ManualClock) in tests.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// Directory for the SQLite database and the uploaded bytes.
    pub data_dir: PathBuf,
    /// Base URL clients reach the server at (for upload and share URLs);
    /// `None` derives it from the bound address.
    pub public_url: Option<url::Url>,
    /// Base URL of share links and playback URLs, where viewers reach the
    /// server at another address than uploaders (the app sharing on the
    /// local network); `None` uses the public URL.
    pub share_url: Option<url::Url>,
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
    /// arrived is saved); so is a response the client reads nothing of.
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
    /// A connection must deliver a whole request head within this long of
    /// starting it (a fresh connection: of being accepted); slow-header
    /// connections are closed after it.
    pub header_timeout: Duration,
    /// An idle keep-alive connection (no request in progress, no bytes of
    /// the next one) is closed after this long.
    pub keepalive_timeout: Duration,
    /// Open connections at most; over it a new connection displaces the
    /// longest-idle keep-alive connection, else the one that has waited
    /// longest for its request head, else it is refused with 503.
    pub max_connections: usize,
    /// Who may frame the share page (CSP `frame-ancestors`).
    pub frame_ancestors: FrameAncestors,
    /// A webhook still failing this long after its event was created is
    /// dead-lettered (kept in the outbox, not retried).
    pub webhook_max_age: Duration,
    /// Delivered and dead-lettered webhooks are pruned from the outbox this
    /// long after they were delivered or given up.
    pub webhook_retention: Duration,
    /// Processing jobs (remux, transcode, posters) run at once at most.
    pub process_jobs: usize,
    /// Where uploads' bytes live.
    pub store: StoreConfig,
    /// Where the metadata lives.
    pub database: DatabaseConfig,
}

/// Where the metadata lives (`--database-url`).
#[derive(Clone, Default)]
pub enum DatabaseConfig {
    /// SQLite in the data directory (the default): one node.
    #[default]
    Sqlite,
    /// A PostgreSQL database (`postgres://…`), which several nodes share.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseConfig {
    // The URL may carry a password: never in a log or a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseConfig::Sqlite => f.write_str("Sqlite"),
            DatabaseConfig::Postgres(_) => f.write_str("Postgres(<url>)"),
        }
    }
}

/// Where uploads' bytes live (`--store`).
#[derive(Debug, Clone, Default)]
pub enum StoreConfig {
    /// Files under `DATA/uploads` (the default).
    #[default]
    Fs,
    /// An S3-compatible bucket.
    S3(crate::store::S3Config),
}

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "frame ancestor {0:?} is neither an origin (scheme://host[:port], http or https) nor 'self' or 'none'"
    )]
    BadFrameAncestor(String),
    #[error("'none' cannot be combined with other frame ancestors")]
    NoneWithOthers,
    #[error("the frame-ancestors list is empty (use 'none' to forbid all framing)")]
    EmptyFrameAncestors,
}

/// The validated source list of the share page's CSP `frame-ancestors`:
/// `'self'`, `'none'`, or origins; each entry already in CSP syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameAncestors(Vec<String>);

impl FrameAncestors {
    /// Only the server's own pages may frame the share page.
    pub fn same_origin() -> Self {
        FrameAncestors(vec!["'self'".to_owned()])
    }

    /// Parses a comma- or space-separated list of origins and `'self'` /
    /// `'none'` (also accepted without quotes, which shells strip).
    pub fn parse(list: &str) -> Result<Self, ConfigError> {
        let mut out: Vec<String> = Vec::new();
        for item in list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let entry = match item.to_ascii_lowercase().as_str() {
                "'self'" | "self" => "'self'".to_owned(),
                "'none'" | "none" => "'none'".to_owned(),
                _ => parse_origin(item)?,
            };
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        if out.is_empty() {
            return Err(ConfigError::EmptyFrameAncestors);
        }
        if out.len() > 1 && out.iter().any(|e| e == "'none'") {
            return Err(ConfigError::NoneWithOthers);
        }
        Ok(FrameAncestors(out))
    }

    /// The source list as it goes into the policy.
    pub fn as_csp(&self) -> String {
        self.0.join(" ")
    }

    /// The legacy `X-Frame-Options` equivalent, where one exists (browsers
    /// that know CSP ignore it; older ones honour only this).
    pub fn x_frame_options(&self) -> Option<&'static str> {
        match self.0.as_slice() {
            [one] if one == "'self'" => Some("SAMEORIGIN"),
            [one] if one == "'none'" => Some("DENY"),
            _ => None,
        }
    }
}

/// `scheme://host[:port]` with nothing else, serialised as browsers do.
fn parse_origin(item: &str) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadFrameAncestor(item.to_owned());
    let url = url::Url::parse(item).map_err(|_| bad())?;
    let bare = item.trim_end_matches('/');
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
        || bare.contains('*')
    {
        return Err(bad());
    }
    // The origin goes into a header verbatim: a domain of anything but
    // letters, digits, '-' and '.' (e.g. a ';') could inject a directive.
    if let Some(url::Host::Domain(d)) = url.host()
        && !d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(bad());
    }
    let origin = url.origin().ascii_serialization();
    if !origin.eq_ignore_ascii_case(bare) {
        return Err(bad());
    }
    Ok(origin)
}

/// Defaults, in one place.
pub mod defaults {
    use std::time::Duration;
    /// Half the CPUs (at least one): a transcode keeps its cores busy, and
    /// uploads must keep flowing meanwhile.
    pub fn process_jobs() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1)
    }
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const DATA_DIR: &str = ".spool/data";
    pub const MAX_SIZE: u64 = 64 * 1024 * 1024 * 1024;
    pub const UPLOAD_TTL: Duration = Duration::from_secs(600);
    pub const UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const STALL_GRACE: Duration = Duration::from_secs(3);
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Generous for any real client (a request head is one packet), short
    /// enough that slow-header connections cannot pile up.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Longer than the recorder's gap between fragments (at most 10 s), so
    /// a recording keeps its connection.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Lowered at start to fit the process's open-file limit.
    pub const MAX_CONNECTIONS: usize = 4096;
    /// 3 days of retries, then the event is dead-lettered.
    pub const WEBHOOK_MAX_AGE: Duration = Duration::from_secs(3 * 24 * 3600);
    /// Delivered and dead events are kept 7 days.
    pub const WEBHOOK_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
}

impl Config {
    /// A configuration with every default, storing under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            data_dir: data_dir.into(),
            public_url: None,
            share_url: None,
            credentials: None,
            webhook: None,
            max_size: defaults::MAX_SIZE,
            upload_ttl: defaults::UPLOAD_TTL,
            upload_expiry: defaults::UPLOAD_EXPIRY,
            idle_timeout: defaults::IDLE_TIMEOUT,
            stall_grace: defaults::STALL_GRACE,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            min_free_space: None,
            header_timeout: defaults::HEADER_TIMEOUT,
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            frame_ancestors: FrameAncestors::same_origin(),
            webhook_max_age: defaults::WEBHOOK_MAX_AGE,
            webhook_retention: defaults::WEBHOOK_RETENTION,
            process_jobs: defaults::process_jobs(),
            store: StoreConfig::Fs,
            database: DatabaseConfig::Sqlite,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ancestors_accept_origins_self_and_none() {
        let fa = FrameAncestors::parse("'self', https://App.Example:8443 http://localhost:3000/")
            .unwrap();
        assert_eq!(
            fa.as_csp(),
            "'self' https://app.example:8443 http://localhost:3000"
        );
        assert_eq!(fa.x_frame_options(), None);
        assert_eq!(
            FrameAncestors::parse("self").unwrap(),
            FrameAncestors::same_origin()
        );
        assert_eq!(
            FrameAncestors::parse("none").unwrap().x_frame_options(),
            Some("DENY")
        );
        assert_eq!(
            FrameAncestors::same_origin().x_frame_options(),
            Some("SAMEORIGIN")
        );
    }

    #[test]
    fn frame_ancestors_reject_what_is_not_an_origin() {
        for bad in [
            "https://app.example/path",
            "ftp://files.example",
            "app.example",
            "https://*.example.com",
            "https://user@app.example",
            "https://app.example/?q=1",
            "'unsafe-inline'",
            "*",
            "https://a.example;script-src",
        ] {
            assert!(
                matches!(
                    FrameAncestors::parse(bad),
                    Err(ConfigError::BadFrameAncestor(_))
                ),
                "{bad} was accepted"
            );
        }
        assert!(matches!(
            FrameAncestors::parse("'none' 'self'"),
            Err(ConfigError::NoneWithOthers)
        ));
        assert!(matches!(
            FrameAncestors::parse(" , "),
            Err(ConfigError::EmptyFrameAncestors)
        ));
    }
}
