//! The shared state every handler and background task sees, and how it is
//! put together at startup: database, signing keys, credentials, store,
//! lock table, and the reconciliation of unfinished uploads with the bytes
//! actually on disk (the truth after a crash).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Credentials, DatabaseConfig};
use crate::db::Db;
use crate::error::Error;
use crate::locks::Locks;
use crate::space::Reserve;
use crate::store::{FsStore, S3Store, Store};

/// Signing keys for upload URLs: the current one signs, all verify.
pub struct SigningKeys {
    pub current_kid: String,
    /// The current key's secret, kept apart so signing can never fall back
    /// to an empty key.
    current_secret: Vec<u8>,
    pub keys: HashMap<String, Vec<u8>>,
}

impl SigningKeys {
    /// The keys oldest first; the newest signs. `None` without any key.
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Option<Self> {
        let (current_kid, current_secret) = keys.last().cloned()?;
        Some(SigningKeys {
            current_kid,
            current_secret,
            keys: keys.into_iter().collect(),
        })
    }

    pub fn current_secret(&self) -> &[u8] {
        &self.current_secret
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
    /// This node's name in leases and job claims: kept in the data folder,
    /// so a restarted node releases what its previous life held.
    pub node: String,
    pub store: Arc<dyn Store>,
    /// The free-space reserve every stored chunk is checked against.
    pub space: Reserve,
    pub locks: Arc<Locks>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Wakes the webhook worker when an event is enqueued.
    pub webhook_wake: Notify,
    /// Wakes the processor when a job may be due.
    pub process_wake: Notify,
    /// Live indexes of uploads in progress.
    pub live: crate::live::LiveIndexes,
    /// This server's exclusive lock on its data folder, held for its life.
    _data_lock: std::fs::File,
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
const LOCK_FILE: &str = "server.lock";
const DB_FILE: &str = "spool.db";
const NODE_FILE: &str = "node-id";

/// Advisory-lock key under which nodes sharing a database create the
/// shared secrets, so two starting together agree on one set.
const SECRETS_LOCK: i64 = 0x5350_4f4f_4c02;

/// This data folder's node name, made on first start.
fn node_id(dir: &Path) -> Result<String, Error> {
    let path = dir.join(NODE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if crate::ids::is_valid_node(s.trim()) => Ok(s.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = format!("n{}", crate::ids::random_hex(6));
            write_private(&path, &format!("{id}\n"))
                .map_err(Error::io(format!("writing {}", path.display())))?;
            Ok(id)
        }
    }
}

/// The API credentials on a database other nodes share: those stored in
/// it, or (first node) new ones stored there, so every node accepts the
/// same; also written to this node's credentials file, for its operator.
async fn shared_credentials(
    config: &Config,
    db: &Db,
) -> Result<(Credentials, CredentialSource), Error> {
    if let Some(c) = &config.credentials {
        return Ok((c.clone(), CredentialSource::Configured));
    }
    let (creds, generated) = db
        .call(|ops| {
            ops.serialize(SECRETS_LOCK)?;
            if let (Some(id), Some(secret)) = (
                ops.setting("api_token_id")?,
                ops.setting("api_token_secret")?,
            ) {
                return Ok((
                    Credentials {
                        token_id: id,
                        token_secret: secret,
                    },
                    false,
                ));
            }
            let creds = Credentials {
                token_id: format!("spool_{}", crate::ids::random_hex(8)),
                token_secret: crate::ids::random_hex(24),
            };
            ops.set_setting("api_token_id", &creds.token_id)?;
            ops.set_setting("api_token_secret", &creds.token_secret)?;
            Ok((creds, true))
        })
        .await?;
    let path = config.data_dir.join(CREDENTIALS_FILE);
    let line = format!("{}:{}\n", creds.token_id, creds.token_secret);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(line.as_str()) {
        // The database's, replacing whatever this folder had (it may have
        // served alone before joining the cluster): written beside, then
        // moved over it, so the file is never half written.
        let tmp = path.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &line)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(Error::io(format!("writing {}", path.display())))?;
    }
    let source = if generated {
        CredentialSource::Generated(path)
    } else {
        CredentialSource::Loaded(path)
    };
    Ok((creds, source))
}

/// Why the data folder cannot be opened by this server.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "the data folder {dir} is in use by another spool server{who}; stop it first, or give this one its own --data folder"
    )]
    InUse { dir: String, who: String },
    #[error("locking the data folder {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

/// Creates the data folder private (0700) and takes its exclusive lock, so
/// a second server on the same folder (another `spool serve`, a second app)
/// fails at once instead of sharing the database and moving the port. The
/// kernel drops the lock when the process dies, `kill -9` included.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, DataDirError> {
    use std::io::{Read, Seek, Write};
    let io = |source| DataDirError::Io {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(dir.join(LOCK_FILE)).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let who = match pid.trim() {
                "" => String::new(),
                p => format!(" (process {p})"),
            };
            return Err(DataDirError::InUse {
                dir: dir.display().to_string(),
                who,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    // The pid is for the message above only.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// Makes the database files private: they hold the URL-signing keys.
#[cfg(unix)]
fn private_db_files(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let db = dir.join(DB_FILE);
    // Created 0600 before SQLite opens it; SQLite gives its -wal and -shm
    // files the database file's mode.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&db)?;
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.join(format!("{DB_FILE}{suffix}"));
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

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

fn resolve_credentials(config: &Config) -> Result<(Credentials, CredentialSource), Error> {
    if let Some(c) = &config.credentials {
        return Ok((c.clone(), CredentialSource::Configured));
    }
    let path = config.data_dir.join(CREDENTIALS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let (id, secret) = s
                .trim()
                .split_once(':')
                .ok_or_else(|| Error::Credentials(path.display().to_string()))?;
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
            .map_err(Error::io(format!("writing {}", path.display())))?;
            Ok((creds, CredentialSource::Generated(path)))
        }
        Err(e) => Err(Error::io(format!("reading {}", path.display()))(e)),
    }
}

impl App {
    /// Opens the data directory and prepares the state; `public_url` is the
    /// base URL clients use (already resolved against the bound address).
    pub async fn open(config: Config, public_url: &str) -> Result<(App, CredentialSource), Error> {
        let data_lock = lock_data_dir(&config.data_dir)?;
        #[cfg(unix)]
        private_db_files(&config.data_dir).map_err(Error::io(format!(
            "making the database in {} private",
            config.data_dir.display()
        )))?;
        let node = node_id(&config.data_dir)?;
        let share_base = config
            .share_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| public_url.to_owned());
        let webhooks = config.webhook.is_some();
        let db = match &config.database {
            DatabaseConfig::Sqlite => {
                Db::open(&config.data_dir.join(DB_FILE), &share_base, webhooks)?
            }
            DatabaseConfig::Postgres(url) => {
                let url = url.clone();
                tokio::task::spawn_blocking(move || Db::open_postgres(&url, &share_base, webhooks))
                    .await
                    .map_err(|e| Error::Db(crate::db::DbError::Task(e.to_string())))??
            }
        };
        let (credentials, source) = if db.is_shared() {
            shared_credentials(&config, &db).await?
        } else {
            resolve_credentials(&config)?
        };
        let keys = db
            .call(|ops| {
                ops.serialize(SECRETS_LOCK)?;
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
        // What this node's previous life held is free now (the data-folder
        // lock proves it is gone); on SQLite, everything is.
        let previous = db.is_shared().then(|| node.clone());
        db.call(move |ops| ops.release_node_leases(previous.as_deref()))
            .await?;
        // Never sign with an empty key: the table always has one by now.
        let keys = SigningKeys::new(keys)
            .ok_or_else(|| Error::Db(crate::db::DbError::Corrupt("no signing key".into())))?;
        let store: Arc<dyn Store> = match &config.store {
            crate::config::StoreConfig::Fs => Arc::new(
                FsStore::open(config.data_dir.join("uploads"))
                    .map_err(Error::io("opening the upload store"))?,
            ),
            crate::config::StoreConfig::S3(s3) => {
                let store = S3Store::open(s3, config.data_dir.join("cache"))
                    .map_err(Error::io("opening the local cache of the bucket"))?;
                store
                    .check()
                    .await
                    .map_err(|e| Error::Store(e.to_string()))?;
                Arc::new(store)
            }
        };
        let space = Reserve::open(store.clone(), config.min_free_space).await;
        let locks = Arc::new(Locks::new(config.clock.clone()));
        let app = App(Arc::new(AppInner {
            public_url: public_url.trim_end_matches('/').to_owned(),
            config,
            credentials,
            keys,
            db,
            node,
            store,
            space,
            locks,
            shutdown: CancellationToken::new(),
            webhook_wake: Notify::new(),
            process_wake: Notify::new(),
            live: Default::default(),
            _data_lock: data_lock,
        }));
        app.reconcile().await?;
        Ok((app, source))
    }

    /// Makes the state truthful after a crash, before serving: each
    /// unfinished upload's offset is brought in line with the bytes in
    /// storage, every complete upload is checked to still have its bytes,
    /// and storage no live upload owns is removed. See [`crate::repair`].
    async fn reconcile(&self) -> Result<(), Error> {
        crate::repair::run(self)
            .await
            .map_err(|e| Error::Repair(e.into()))
    }

    /// The current time in Unix ms, from the configured clock.
    pub fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    pub fn expiry_ms(&self) -> i64 {
        self.config.upload_expiry.as_millis() as i64
    }

    /// The absolute, signed URL of an upload.
    pub fn signed_upload_url(&self, upload_id: &str, sig_exp: u64) -> String {
        let token = spool_proto::token::sign(
            &self.keys.current_kid,
            self.keys.current_secret(),
            spool_proto::token::Purpose::Upload,
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
        self.process_wake.notify_one();
    }
}
