//! The shared state every handler and background task sees, and how it is
//! put together at startup: database, signing keys, credentials, store,
//! lock table, and the reconciliation of unfinished uploads with the bytes
//! actually on disk (the truth after a crash).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Credentials};
use crate::db::Db;
use crate::locks::Locks;
use crate::space::Reserve;
use crate::store::{FsStore, Store};

/// Signing keys for upload URLs: the current one signs, all verify.
pub struct SigningKeys {
    pub current_kid: String,
    pub keys: HashMap<String, Vec<u8>>,
}

impl SigningKeys {
    pub fn current_secret(&self) -> &[u8] {
        self.keys
            .get(&self.current_kid)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Where the API credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// Given on the command line or in the environment.
    Configured,
    /// Read from the credentials file in the data directory.
    Loaded(PathBuf),
    /// Generated on this start and written to the credentials file.
    Generated(PathBuf),
}

/// Everything shared.
pub struct AppInner {
    pub config: Config,
    pub public_url: String,
    pub credentials: Credentials,
    pub keys: SigningKeys,
    pub db: Db,
    pub store: Arc<dyn Store>,
    /// The free-space reserve every stored chunk is checked against.
    pub space: Reserve,
    pub locks: Arc<Locks>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Wakes the webhook worker when an event is enqueued.
    pub webhook_wake: Notify,
}

/// A cheap handle to the shared state.
#[derive(Clone)]
pub struct App(pub Arc<AppInner>);

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

const CREDENTIALS_FILE: &str = "credentials";

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

fn resolve_credentials(config: &Config) -> anyhow::Result<(Credentials, CredentialSource)> {
    if let Some(c) = &config.credentials {
        return Ok((c.clone(), CredentialSource::Configured));
    }
    let path = config.data_dir.join(CREDENTIALS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let (id, secret) = s
                .trim()
                .split_once(':')
                .with_context(|| format!("{} is not 'id:secret'", path.display()))?;
            Ok((
                Credentials {
                    token_id: id.to_owned(),
                    token_secret: secret.to_owned(),
                },
                CredentialSource::Loaded(path),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let creds = Credentials {
                token_id: format!("spool_{}", crate::ids::random_hex(8)),
                token_secret: crate::ids::random_hex(24),
            };
            write_private(
                &path,
                &format!("{}:{}\n", creds.token_id, creds.token_secret),
            )
            .with_context(|| format!("writing {}", path.display()))?;
            Ok((creds, CredentialSource::Generated(path)))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl App {
    /// Opens the data directory and prepares the state; `public_url` is the
    /// base URL clients use (already resolved against the bound address).
    pub async fn open(config: Config, public_url: &str) -> anyhow::Result<(App, CredentialSource)> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let (credentials, source) = resolve_credentials(&config)?;
        let db = Db::open(
            &config.data_dir.join("spool.db"),
            public_url,
            config.webhook.is_some(),
        )
        .context("opening the database")?;
        let keys = db
            .call(|ops| {
                let mut keys = ops.signing_keys()?;
                if keys.is_empty() {
                    let kid = format!("k{}", crate::ids::random_hex(4));
                    let secret = crate::ids::random_bytes(32);
                    ops.insert_signing_key(&kid, &secret)?;
                    keys.push((kid, secret));
                }
                Ok(keys)
            })
            .await?;
        let current_kid = keys.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let store: Arc<dyn Store> = Arc::new(
            FsStore::open(config.data_dir.join("uploads")).context("opening the upload store")?,
        );
        let space = Reserve::open(store.clone(), config.min_free_space).await;
        let app = App(Arc::new(AppInner {
            public_url: public_url.trim_end_matches('/').to_owned(),
            config,
            credentials,
            keys: SigningKeys {
                current_kid,
                keys: keys.into_iter().collect(),
            },
            db,
            store,
            space,
            locks: Arc::new(Locks::default()),
            shutdown: CancellationToken::new(),
            webhook_wake: Notify::new(),
        }));
        app.reconcile().await?;
        Ok((app, source))
    }

    /// Brings each unfinished upload's offset in line with the bytes on disk:
    /// after a kill, bytes written but not yet recorded are kept (they
    /// arrived, in order), and an upload that thereby became complete is
    /// completed.
    async fn reconcile(&self) -> anyhow::Result<()> {
        let active = self.db.call(|ops| ops.active_uploads()).await?;
        for row in active {
            let valid = self.store.recover(&row.id, row.offset, row.length).await?;
            if valid != row.offset {
                tracing::info!(upload = %row.id, recorded = row.offset, on_disk = valid, "reconciled upload offset with disk");
            }
            let expiry = self.expiry_ms();
            let id = row.id.clone();
            self.db
                .call(move |ops| {
                    ops.reconcile_offset(&id, valid)?;
                    // Re-record at the same offset: completes the upload if
                    // the disk already holds every byte.
                    let current = ops.upload(&id)?.map(|r| r.offset).unwrap_or(valid);
                    if current == valid && row.length == Some(valid) {
                        ops.record_progress(&id, valid, crate::db::now_ms(), expiry)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    pub fn expiry_ms(&self) -> i64 {
        self.config.upload_expiry.as_millis() as i64
    }

    /// The absolute, signed URL of an upload.
    pub fn signed_upload_url(&self, upload_id: &str, sig_exp: u64) -> String {
        let token = spool_proto::token::sign(
            &self.keys.current_kid,
            self.keys.current_secret(),
            upload_id,
            sig_exp,
        );
        format!(
            "{}/v1/uploads/{upload_id}?{}={token}",
            self.public_url,
            spool_proto::token::QUERY_PARAM
        )
    }

    /// Wakes the webhook worker after a state change.
    pub fn events_enqueued(&self) {
        self.webhook_wake.notify_one();
    }
}
