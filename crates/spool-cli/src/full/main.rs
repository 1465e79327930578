//! `spool-full`, the whole `spool` command (the launcher `spool` execs it
//! for everything but the client commands): a thin shell that parses
//! arguments, wires Spool's crates together and presents results. `spool
//! serve` runs the upload server, `spool record` the recorder, and
//! `upload`, `resume` and `uploads` the same client commands as the
//! launcher.

mod record;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use spool_proto::webhook::WebhookSecret;
use spool_server::config::{FrameAncestors, StoreConfig, defaults};
use spool_server::{Config, CredentialSource, Credentials, DatabaseConfig, Server, WebhookConfig};

#[derive(Parser)]
#[command(name = "spool", version, about = spool_cli::ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the upload server: signed upload API, TUS 1.0 endpoint, share pages, webhooks.
    Serve(Box<ServeArgs>),
    #[command(flatten)]
    Client(spool_cli::ClientCommand),
    /// Record the screen and upload while recording; the link is ready about a second after Stop.
    Record(record::RecordArgs),
    /// List what can be captured (the display and its windows).
    Sources(SourcesArgs),
}

#[derive(Args)]
struct SourcesArgs {
    /// X display (default: $DISPLAY).
    #[arg(long)]
    display: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// List sound devices instead: inputs (microphones, for --mic) and outputs (for --system-audio).
    #[arg(long)]
    audio: bool,
}

/// `spool sources --audio`: the audio server's inputs and outputs.
fn audio_sources(json: bool) -> anyhow::Result<()> {
    let devices = spool_capture::audio::devices()
        .map_err(|e| spool_cli::exit::coded(spool_proto::ErrorCode::AudioUnavailable, e))?;
    for (kind, list) in [("input", &devices.inputs), ("output", &devices.outputs)] {
        for d in list {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"kind": kind, "name": d.name, "description": d.description, "default": d.default, "monitor": d.monitor})
                );
            } else {
                println!(
                    "{kind:<7}{} {:<48} {}",
                    if d.default { "*" } else { " " },
                    d.name,
                    d.description
                );
            }
        }
    }
    if !json && devices.inputs.is_empty() {
        eprintln!("no microphone: the audio server has no input device");
    }
    Ok(())
}

fn sources(args: SourcesArgs) -> anyhow::Result<()> {
    if args.audio {
        return audio_sources(args.json);
    }
    for t in spool_capture::list(args.display.as_deref())? {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"source": t.source, "name": t.name, "width": t.width, "height": t.height})
            );
        } else {
            println!("{:<24} {}x{}  {}", t.source, t.width, t.height, t.name);
        }
    }
    Ok(())
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "SPOOL_LISTEN", default_value = defaults::LISTEN)]
    listen: SocketAddr,
    /// Directory for the database and uploaded bytes.
    #[arg(long, env = "SPOOL_DATA", default_value = defaults::DATA_DIR)]
    data: PathBuf,
    /// Base URL clients reach this server at (default: from --listen).
    #[arg(long, env = "SPOOL_PUBLIC_URL")]
    public_url: Option<url::Url>,
    /// Base URL of share links and playback URLs, when viewers reach this server at another address than uploaders (default: the public URL).
    #[arg(long, env = "SPOOL_SHARE_URL")]
    share_url: Option<url::Url>,
    /// API token id (default: generated on first start, kept in DATA/credentials).
    #[arg(long, env = "SPOOL_TOKEN_ID")]
    token_id: Option<String>,
    /// File holding the API token secret (or `id:secret`); the documented way
    /// to give it, with SPOOL_TOKEN_SECRET.
    #[arg(long, env = "SPOOL_TOKEN_SECRET_FILE")]
    token_secret_file: Option<PathBuf>,
    /// API token secret. Prefer --token-secret-file or SPOOL_TOKEN_SECRET: a
    /// secret on the command line is visible to every user in `ps`.
    #[arg(long, env = "SPOOL_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// Where to send signed webhooks.
    #[arg(long, env = "SPOOL_WEBHOOK_URL", requires = "webhook_secret")]
    webhook_url: Option<url::Url>,
    /// Webhook signing secret, whsec_ followed by base64.
    #[arg(
        long,
        env = "SPOOL_WEBHOOK_SECRET",
        requires = "webhook_url",
        hide_env_values = true
    )]
    webhook_secret: Option<String>,
    /// Largest upload accepted, in bytes.
    #[arg(long, env = "SPOOL_MAX_SIZE", default_value_t = defaults::MAX_SIZE)]
    max_size: u64,
    /// Seconds a fresh upload URL may wait for its first byte.
    #[arg(long, env = "SPOOL_UPLOAD_TTL", default_value_t = defaults::UPLOAD_TTL.as_secs())]
    upload_ttl: u64,
    /// Seconds without incoming bytes after which an unfinished upload expires.
    #[arg(long, env = "SPOOL_UPLOAD_EXPIRY", default_value_t = defaults::UPLOAD_EXPIRY.as_secs())]
    upload_expiry: u64,
    /// Seconds a request body may deliver nothing (what arrived is kept), or a client may read nothing of a response, before it is cut off.
    #[arg(long, env = "SPOOL_IDLE_TIMEOUT", default_value_t = defaults::IDLE_TIMEOUT.as_secs())]
    idle_timeout: u64,
    /// Bytes to keep free on the volume holding DATA; a chunk that would cross this is refused
    /// with 507 and not stored (default: 1 GiB or 5 % of the volume, whichever is smaller; 0: none).
    #[arg(long, env = "SPOOL_MIN_FREE_SPACE")]
    min_free_space: Option<u64>,
    /// Seconds a connection may take to send a whole request head (slow ones are closed).
    #[arg(long, env = "SPOOL_HEADER_TIMEOUT", default_value_t = defaults::HEADER_TIMEOUT.as_secs())]
    header_timeout: u64,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, env = "SPOOL_KEEPALIVE_TIMEOUT", default_value_t = defaults::KEEPALIVE_TIMEOUT.as_secs())]
    keepalive_timeout: u64,
    /// Open connections at most; over it, idle and slow connections make room or new ones get 503.
    #[arg(long, env = "SPOOL_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Who may embed the share page in a frame: origins (https://host[:port]), 'self' or 'none'.
    #[arg(long, env = "SPOOL_FRAME_ANCESTORS", default_value = "'self'")]
    frame_ancestors: String,
    /// Seconds a failing webhook is retried before it is dead-lettered.
    #[arg(long, env = "SPOOL_WEBHOOK_MAX_AGE", default_value_t = defaults::WEBHOOK_MAX_AGE.as_secs())]
    webhook_max_age: u64,
    /// Seconds delivered and dead-lettered webhooks are kept in the outbox.
    #[arg(long, env = "SPOOL_WEBHOOK_RETENTION", default_value_t = defaults::WEBHOOK_RETENTION.as_secs())]
    webhook_retention: u64,
    /// Processing jobs (remux, transcode, posters) run at once at most; default: half the CPUs.
    #[arg(long, env = "SPOOL_PROCESS_JOBS", default_value_t = defaults::process_jobs())]
    process_jobs: usize,
    /// Where uploaded bytes live: fs (files under DATA/uploads) or s3 (an S3-compatible bucket; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
    #[arg(long, env = "SPOOL_STORE", default_value = "fs", value_parser = ["fs", "s3"])]
    store: String,
    /// The bucket of --store s3.
    #[arg(long, env = "SPOOL_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// The S3 endpoint, for stores other than AWS (e.g. http://127.0.0.1:3900).
    #[arg(long, env = "SPOOL_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The S3 region (for Garage: its s3_region).
    #[arg(long, env = "SPOOL_S3_REGION", default_value = "us-east-1")]
    s3_region: String,
    /// Path-style requests (endpoint/bucket/key), which most self-hosted stores need: 1 or 0.
    #[arg(long, env = "SPOOL_S3_PATH_STYLE", default_value = "0", value_parser = ["0", "1", "true", "false"])]
    s3_path_style: String,
    /// Prefix of every key, so deployments can share a bucket.
    #[arg(long, env = "SPOOL_S3_PREFIX", default_value = "")]
    s3_prefix: String,
    /// Bytes per multipart part (at least 5 MiB; the last part may be smaller).
    #[arg(long, env = "SPOOL_S3_PART_SIZE", default_value_t = 8 * 1024 * 1024)]
    s3_part_size: u64,
    /// Metadata in PostgreSQL (postgres://user:password@host:port/db), which several nodes share; default: SQLite in --data.
    #[arg(long, env = "SPOOL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl ServeArgs {
    /// `--store` and the `SPOOL_S3_*` settings, credentials from the
    /// standard AWS variables.
    fn store_config(&self) -> anyhow::Result<StoreConfig> {
        if self.store == "fs" {
            return Ok(StoreConfig::Fs);
        }
        let Some(bucket) = self.s3_bucket.clone().filter(|b| !b.is_empty()) else {
            bail!("--store s3 needs a bucket: --s3-bucket or SPOOL_S3_BUCKET");
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(access_key), Some(secret_key)) =
            (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        else {
            bail!("--store s3 needs credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        };
        if self.s3_part_size < spool_server::store::MIN_PART || self.s3_part_size > 5 << 30 {
            bail!("--s3-part-size must be between 5 MiB and 5 GiB");
        }
        if let Some(ep) = &self.s3_endpoint {
            url::Url::parse(ep).map_err(|e| anyhow::anyhow!("--s3-endpoint {ep}: {e}"))?;
        }
        Ok(StoreConfig::S3(spool_server::store::S3Config {
            bucket,
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            path_style: matches!(self.s3_path_style.as_str(), "1" | "true"),
            prefix: self.s3_prefix.clone(),
            part_size: self.s3_part_size,
            access_key,
            secret_key,
            session_token: env("AWS_SESSION_TOKEN"),
        }))
    }

    fn into_config(self) -> anyhow::Result<Config> {
        if self.max_size == 0 || self.max_size > i64::MAX as u64 {
            bail!("--max-size must be between 1 and {}", i64::MAX);
        }
        for (name, v) in [
            ("--upload-ttl", self.upload_ttl),
            ("--upload-expiry", self.upload_expiry),
            ("--idle-timeout", self.idle_timeout),
            ("--header-timeout", self.header_timeout),
            ("--keepalive-timeout", self.keepalive_timeout),
            ("--webhook-max-age", self.webhook_max_age),
            ("--webhook-retention", self.webhook_retention),
        ] {
            if v == 0 || v > 10 * 365 * 24 * 3600 {
                bail!(
                    "{name} must be between 1 and {} seconds",
                    10 * 365 * 24 * 3600
                );
            }
        }
        if self.max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        if !(1..=64).contains(&self.process_jobs) {
            bail!("--process-jobs must be between 1 and 64");
        }
        let store = self.store_config()?;
        let database = match self.database_url.as_deref().filter(|u| !u.is_empty()) {
            None => DatabaseConfig::Sqlite,
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                DatabaseConfig::Postgres(url.to_owned())
            }
            // Never echo the value: it may hold a password.
            Some(_) => bail!("--database-url must be a postgres:// (or postgresql://) URL"),
        };
        let frame_ancestors =
            FrameAncestors::parse(&self.frame_ancestors).context("--frame-ancestors")?;
        let mut config = Config::new(self.data);
        config.listen = self.listen;
        config.public_url = self.public_url;
        config.share_url = self.share_url;
        config.max_size = self.max_size;
        config.upload_ttl = Duration::from_secs(self.upload_ttl);
        config.upload_expiry = Duration::from_secs(self.upload_expiry);
        config.idle_timeout = Duration::from_secs(self.idle_timeout);
        config.header_timeout = Duration::from_secs(self.header_timeout);
        config.keepalive_timeout = Duration::from_secs(self.keepalive_timeout);
        config.max_connections = self.max_connections;
        config.frame_ancestors = frame_ancestors;
        config.webhook_max_age = Duration::from_secs(self.webhook_max_age);
        config.webhook_retention = Duration::from_secs(self.webhook_retention);
        config.process_jobs = self.process_jobs;
        config.store = store;
        config.database = database;
        config.min_free_space = self.min_free_space;
        let (token_id, token_secret) = spool_cli::secret::resolve(
            self.token_id,
            self.token_secret,
            self.token_secret_file.as_deref(),
        )?;
        match (token_id, token_secret) {
            (Some(token_id), Some(token_secret)) => {
                if token_id.is_empty() || token_id.contains(':') || token_secret.is_empty() {
                    bail!(
                        "--token-id must be non-empty without ':' and the token secret non-empty"
                    );
                }
                config.credentials = Some(Credentials {
                    token_id,
                    token_secret,
                });
            }
            (None, None) => {}
            _ => bail!(
                "give both the token id (--token-id) and its secret (--token-secret-file or SPOOL_TOKEN_SECRET), or neither"
            ),
        }
        if let (Some(url), Some(secret)) = (self.webhook_url, self.webhook_secret) {
            let secret = WebhookSecret::parse(&secret).context("--webhook-secret")?;
            config.webhook = Some(WebhookConfig { url, secret });
        }
        Ok(config)
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when it is first polled: "listening on" is printed before the
/// server runs, and a SIGTERM right after it must stop the server cleanly,
/// not end the process by the signal's default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).ok(),
            signal(SignalKind::terminate()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! { _ = int => {}, _ = term => {} }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let data_dir = config.data_dir.clone();
    let server = Server::bind(config).await?;
    let shutdown = shutdown_signal();
    let base = server.app.public_url.clone();
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", server.addr)?;
    let creds = &server.app.credentials;
    match &server.credential_source {
        CredentialSource::Generated(path) => {
            writeln!(
                out,
                "generated API credentials (kept in {}):",
                path.display()
            )?;
            writeln!(out, "  token id:     {}", creds.token_id)?;
            writeln!(out, "  token secret: {}", creds.token_secret)?;
        }
        CredentialSource::Loaded(path) => writeln!(
            out,
            "API credentials: token id {} (secret in {})",
            creds.token_id,
            path.display()
        )?,
        CredentialSource::Configured => writeln!(
            out,
            "API credentials: token id {} (from the command line or environment)",
            creds.token_id
        )?,
    }
    if !matches!(server.credential_source, CredentialSource::Configured) {
        let cred_file = data_dir.join("credentials");
        writeln!(out, "try it:")?;
        writeln!(
            out,
            "  curl -s -u \"$(cat {})\" -X POST {base}/v1/on-demand -H 'content-type: application/json' -d '{{\"metadata\":{{\"title\":\"demo\"}}}}'",
            cred_file.display()
        )?;
        writeln!(
            out,
            "  # then PATCH bytes to the upload_url it returns, e.g.:"
        )?;
        writeln!(
            out,
            "  curl -s -X PATCH \"$UPLOAD_URL\" -H 'tus-resumable: 1.0.0' -H 'upload-offset: 0' -H 'upload-length: 5' -H 'content-type: application/offset+octet-stream' --data-binary hello"
        )?;
        writeln!(
            out,
            "  # and open the share_url it returned; or record and upload while recording:"
        )?;
        writeln!(
            out,
            "  spool record --source synthetic --duration 10 --server {base} --token-secret-file {}",
            cred_file.display()
        )?;
    }
    out.flush()?;
    drop(out);
    Ok(server.run(shutdown).await?)
}

/// The recorder's and the capture's errors by their codes (the launcher
/// links neither).
fn classify(e: &(dyn std::error::Error + 'static)) -> Option<spool_proto::ErrorCode> {
    if let Some(r) = e.downcast_ref::<spool_record::RecordError>() {
        return Some(r.error_code());
    }
    e.is::<spool_capture::CaptureError>()
        .then_some(spool_proto::ErrorCode::Source)
}

fn main() -> std::process::ExitCode {
    spool_cli::init_tracing();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let command = async {
        match cli.command {
            Command::Serve(args) => serve(*args).await,
            Command::Client(command) => command.run(&matches).await,
            Command::Record(args) => {
                let sub = matches
                    .subcommand_matches("record")
                    .cloned()
                    .unwrap_or_default();
                record::record(args, &sub).await
            }
            Command::Sources(args) => sources(args),
        }
    };
    spool_cli::run(command, classify)
}
