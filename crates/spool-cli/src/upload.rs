//! `spool upload`, `spool resume` and `spool uploads`: thin shells over
//! spool-client that turn its events into `--json` lines or a human progress
//! line, and its outcome into an exit code.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use clap::parser::ValueSource;
use spool_client::{
    Checksum, Client, Event, Options, Protocol, Resumption, Session, Skip, SourceRecord, Target,
    UploadState,
};

/// Where uploads go.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Spool server to create the upload on (its on-demand API).
    #[arg(long, env = "SPOOL_SERVER_URL")]
    pub server: Option<String>,
    /// API token id for --server.
    #[arg(long, env = "SPOOL_TOKEN_ID")]
    pub token_id: Option<String>,
    /// File holding the API token secret (or `id:secret`, as `spool serve`
    /// writes DATA/credentials); the documented way, with SPOOL_TOKEN_SECRET.
    #[arg(long, env = "SPOOL_TOKEN_SECRET_FILE")]
    pub token_secret_file: Option<PathBuf>,
    /// API token secret for --server. Prefer --token-secret-file or
    /// SPOOL_TOKEN_SECRET: a secret on the command line shows in `ps`.
    #[arg(long, env = "SPOOL_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Any creation endpoint, TUS or the IETF draft (the upload is created with its length unknown).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// An existing upload URL (e.g. a signed one from POST /v1/on-demand).
    #[arg(long)]
    pub upload_url: Option<String>,
}

impl TargetArgs {
    /// The target, or `None` when none was given.
    pub fn target(&self) -> anyhow::Result<Option<Target>> {
        if let Some(u) = &self.upload_url {
            return Ok(Some(Target::UploadUrl(u.clone())));
        }
        let (token_id, token_secret) = crate::secret::resolve(
            self.token_id.clone(),
            self.token_secret.clone(),
            self.token_secret_file.as_deref(),
        )?;
        if let Some(e) = &self.endpoint {
            // Credentials given with an endpoint authorise the creation (as
            // Spool's own /v1/uploads requires).
            let headers = match (&token_id, &token_secret) {
                (Some(id), Some(secret)) => {
                    use base64::Engine as _;
                    vec![(
                        "authorization".to_owned(),
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode(format!("{id}:{secret}"))
                        ),
                    )]
                }
                _ => Vec::new(),
            };
            return Ok(Some(Target::Endpoint {
                url: e.clone(),
                headers,
            }));
        }
        let Some(server) = &self.server else {
            return Ok(None);
        };
        match (&token_id, &token_secret) {
            (Some(id), Some(secret)) => Ok(Some(Target::OnDemand {
                server: server.trim_end_matches('/').to_owned(),
                token_id: id.clone(),
                token_secret: secret.clone(),
            })),
            _ => bail!(
                "--server needs the API token id and secret: --token-id with --token-secret-file (or SPOOL_TOKEN_ID and SPOOL_TOKEN_SECRET)"
            ),
        }
    }

    /// Refuses two targets given on the command line.
    pub fn check_exclusive(matches: &clap::ArgMatches) -> anyhow::Result<()> {
        let given: Vec<&str> = ["server", "endpoint", "upload_url"]
            .into_iter()
            .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
            .collect();
        if given.len() > 1 {
            bail!(
                "give one upload target: --server, --endpoint or --upload-url (got {})",
                given.join(", ")
            );
        }
        Ok(())
    }
}

/// Options shared by commands that upload.
#[derive(Args, Debug, Clone)]
pub struct UploadOptions {
    /// Bytes per PATCH, or `auto` to adapt to throughput (256 KiB – 64 MiB).
    #[arg(long, default_value = "auto")]
    pub chunk_size: String,
    /// Smallest non-final PATCH (for servers such as S3-backed ones that want ≥ 5 MiB).
    #[arg(long, default_value_t = 0)]
    pub min_chunk: u64,
    /// Upload-Checksum on every PATCH.
    #[arg(long, default_value = "none", value_parser = ["sha256", "sha1", "none"])]
    pub checksum: String,
    /// Seconds a PATCH body may make no progress before the connection is cut and recovered.
    #[arg(long, default_value_t = 15)]
    pub stall_timeout: u64,
    /// Upload protocol: TUS 1.0, the IETF resumable-upload draft, or `auto`
    /// (the draft where the server says it speaks it, else TUS).
    #[arg(long, default_value = "auto", value_parser = PROTOCOLS)]
    pub protocol: String,
}

/// The values of `--protocol`.
pub const PROTOCOLS: [&str; 3] = ["tus", "ietf", "auto"];

impl UploadOptions {
    pub fn options(&self) -> anyhow::Result<Options> {
        let chunk_size = match self.chunk_size.as_str() {
            "auto" => None,
            n => {
                let v: u64 = n.parse().with_context(|| {
                    format!("--chunk-size {n:?}: expected a number of bytes or auto")
                })?;
                if v == 0 {
                    bail!("--chunk-size must be positive");
                }
                Some(v)
            }
        };
        if chunk_size.is_some_and(|c| c < self.min_chunk) {
            bail!("--chunk-size is below --min-chunk");
        }
        let checksum = match self.checksum.as_str() {
            "sha256" => Some(Checksum::Sha256),
            "sha1" => Some(Checksum::Sha1),
            _ => None,
        };
        let protocol = Protocol::parse(&self.protocol).with_context(|| {
            format!("--protocol {:?}: expected tus, ietf or auto", self.protocol)
        })?;
        Ok(Options {
            chunk_size,
            min_chunk: self.min_chunk,
            checksum,
            protocol,
            ..Options::default()
        })
    }
}

/// Where the journal lives.
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// Directory of the upload journal (default: $XDG_STATE_HOME/spool or ~/.local/state/spool).
    #[arg(long, env = "SPOOL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// One JSON object per line on stdout.
    #[arg(long)]
    pub json: bool,
}

impl StateArgs {
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(d) = &self.state_dir {
            return Ok(d.clone());
        }
        if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(x).join("spool"));
        }
        let home = std::env::var_os("HOME").context("no --state-dir given and HOME is not set")?;
        Ok(PathBuf::from(home).join(".local/state/spool"))
    }
}

#[derive(Args, Debug)]
pub struct UploadArgs {
    /// The file to upload.
    pub file: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub options: UploadOptions,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Credentials, used only if an upload vanished from the server and must be created again.
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: StateArgs,
}

fn mb(n: u64) -> String {
    format!("{:.1} MB", n as f64 / 1e6)
}

/// Prints events as JSON lines or as a human progress line; `id` is added
/// to JSON lines when several uploads share the output.
async fn print_events(mut rx: tokio::sync::mpsc::Receiver<Event>, json: bool, id: Option<String>) {
    let mut err = std::io::stderr();
    while let Some(e) = rx.recv().await {
        if json {
            // An event that cannot be serialised is said, not printed as `null`.
            let mut v = match serde_json::to_value(&e) {
                Ok(v) => v,
                Err(why) => {
                    let _ = writeln!(err, "spool: cannot print an event: {why}");
                    continue;
                }
            };
            if let (Some(id), Some(o)) = (&id, v.as_object_mut()) {
                o.insert("id".into(), id.clone().into());
            }
            println!("{v}");
            continue;
        }
        let prefix = id.as_deref().map(|i| format!("[{i}] ")).unwrap_or_default();
        match e {
            Event::Progress {
                confirmed, total, ..
            } => {
                let of = total.map(|t| format!(" of {}", mb(t))).unwrap_or_default();
                let pct = total
                    .filter(|t| *t > 0)
                    .map(|t| format!(" ({:.0}%)", confirmed as f64 * 100.0 / t as f64))
                    .unwrap_or_default();
                let _ = write!(err, "\r{prefix}uploaded {}{of}{pct}    ", mb(confirmed));
            }
            Event::Reconnecting {
                attempt,
                retry_in_ms,
                error,
            } => {
                let _ = writeln!(
                    err,
                    "\n{prefix}reconnecting (attempt {attempt}, retry in {:.1} s): {error}",
                    retry_in_ms as f64 / 1000.0
                );
            }
            Event::Stalled { error } => {
                let _ = writeln!(
                    err,
                    "\n{prefix}stalled, still retrying; everything is kept on disk: {error}"
                );
            }
            Event::Recreated { reason } => {
                let _ = writeln!(err, "\n{prefix}{reason}");
            }
            Event::Created { share_url, .. } => {
                if let Some(url) = share_url {
                    let _ = writeln!(err, "{prefix}share link: {url}");
                }
            }
            Event::Complete { .. } => {
                let _ = writeln!(err);
            }
        }
    }
}

fn report_complete(c: &spool_client::Completed, json: bool) {
    if !json {
        println!("uploaded {} (sha256 {})", mb(c.bytes), c.sha256);
        if let Some(s) = &c.share_url {
            println!("share link: {s}");
        }
    }
}

/// Runs `session` (with an optional producer) until it completes, fails or
/// the user interrupts it.
async fn drive(
    mut session: Session,
    produce: Option<SourceRecord>,
    json: bool,
    id_in_output: bool,
) -> anyhow::Result<spool_client::Completed> {
    let events = session.take_events().context("events already taken")?;
    let printer = tokio::spawn(print_events(
        events,
        json,
        id_in_output.then(|| session.id.clone()),
    ));
    if let Some(source) = produce
        && let Err(e) = spool_client::source::produce_file(&session, &source).await
    {
        session.stop();
        let _ = session.wait().await;
        return Err(e.into());
    }
    let result = session.wait().await;
    let _ = printer.await;
    Ok(result?)
}

async fn interrupted() {
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn upload(args: UploadArgs, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    TargetArgs::check_exclusive(matches)?;
    let target = args.target.target()?.context("no upload target: give --server (with --token-id and --token-secret-file), --endpoint or --upload-url")?;
    let mut options = args.options.options()?;
    let source = spool_client::source::file_source(&args.file)?;
    if let Some(name) = args.file.file_name().and_then(|n| n.to_str()) {
        options.metadata.push(("filename".into(), name.to_owned()));
    }
    let client = Client::open(&args.state.dir()?)?;
    let session = client.start(target, source.clone(), options).await?;
    let id = session.id.clone();
    let json = args.state.json;
    tokio::select! {
        r = drive(session, Some(source), json, false) => {
            let c = r.map_err(|e| {
                // A server without the protocol asked for will not grow it
                // on a resume: that hint would only mislead.
                let unsupported = e
                    .downcast_ref::<spool_client::ClientError>()
                    .is_some_and(|c| matches!(c, spool_client::ClientError::Unsupported(_)));
                if unsupported {
                    e.context(format!("upload {id} was not started"))
                } else {
                    e.context(format!("upload {id} did not complete; the journal keeps it: run `spool resume`"))
                }
            })?;
            report_complete(&c, json);
            Ok(())
        }
        _ = interrupted() => Err(crate::exit::coded(
            spool_proto::ErrorCode::Interrupted,
            format!("interrupted; upload {id} is kept in the journal: run `spool resume` to continue it"),
        )),
    }
}

pub async fn resume(args: ResumeArgs) -> anyhow::Result<()> {
    let client = Client::open(&args.state.dir()?)?;
    let json = args.state.json;
    // Credentials given wrongly (a --server without its secret, a secret
    // file that cannot be read) are said, not silently dropped.
    let creds = args
        .target
        .target()
        .context("the credentials given to resume with")?;
    let resumed = client
        .resume_unfinished(true, |_| std::future::ready(creds.clone()))
        .await?;
    if resumed.is_empty() {
        if !json {
            println!("nothing to resume");
        }
        return Ok(());
    }
    let mut tasks = Vec::new();
    for r in resumed {
        let (rec, session) = match r {
            Resumption::Started { record, session } => (record, session),
            Resumption::Skipped { record, reason } => {
                // A live owner (a recorder still capturing, another
                // `spool resume`) keeps its entry: skipped, said, and the
                // exit status says not everything was resumed.
                let e = match reason {
                    Skip::Error(e) => e,
                    // Neither happens here: failed ones are included, and
                    // nothing else runs in this process.
                    Skip::Failed | Skip::Running => continue,
                };
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "event": "error",
                            "id": record.id,
                            "code": e.code().map(|c| c.as_str()),
                            "class": e.class().as_str(),
                            "error": e.to_string(),
                        })
                    );
                }
                eprintln!("spool: upload {}: {e}", record.id);
                let why = format!("upload {}: {e}", record.id);
                tasks.push(tokio::spawn(async move {
                    Err::<(), anyhow::Error>(anyhow::anyhow!(why))
                }));
                continue;
            }
        };
        let produce = match (&rec.source, rec.finished) {
            (SourceRecord::File { .. }, false) => Some(rec.source.clone()),
            (SourceRecord::Stream { .. }, false) => {
                // The producer is gone (it crashed or was killed): what is
                // journaled is all there is, so that is the whole upload.
                if !json {
                    eprintln!(
                        "[{}] its producer stopped before finishing; completing with the {} bytes on disk",
                        rec.id,
                        session.produced().await
                    );
                }
                None
            }
            _ => None,
        };
        let id = rec.id.clone();
        tasks.push(tokio::spawn(async move {
            let c = drive(session, produce, json, true)
                .await
                .with_context(|| format!("upload {id}"))?;
            if !json {
                eprintln!("[{id}] complete");
            }
            report_complete(&c, json);
            Ok(())
        }));
    }
    let all = futures_join(tasks);
    let results = tokio::select! {
        r = all => r,
        _ = interrupted() => return Err(crate::exit::coded(
            spool_proto::ErrorCode::Interrupted,
            "interrupted; the journal keeps every upload: run `spool resume` again",
        )),
    };
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err())
        .map(|e| format!("{e:#}"))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} upload(s) did not complete:\n  {}",
            failed.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

async fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> Vec<anyhow::Result<()>> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("task failed: {e}"))),
        );
    }
    out
}

pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let client = Client::open(&args.state.dir()?)?;
    let records = client.journal().list().await?;
    for r in records {
        let source = r.source.local_path().display().to_string();
        // The signature stays out of listings.
        let url = r
            .upload_url
            .as_deref()
            .map(|u| u.split('?').next().unwrap_or_default().to_owned());
        let total = r.finished.then_some(r.produced);
        if args.state.json {
            let v = serde_json::json!({
                "id": r.id, "state": r.state.as_str(), "confirmed": r.acked, "produced": r.produced, "total": total,
                "source": source, "upload_url": url, "asset_id": r.asset_id, "share_url": r.share_url, "error": r.last_error,
            });
            println!("{v}");
        } else {
            let of = total
                .map(|t| format!(" / {}", mb(t)))
                .unwrap_or_else(|| " / ?".into());
            let err = r
                .last_error
                .filter(|_| r.state != UploadState::Complete)
                .map(|e| format!("  ({e})"))
                .unwrap_or_default();
            println!(
                "{}  {:<9} {}{of}  {source}{err}",
                r.id,
                r.state.as_str(),
                mb(r.acked)
            );
        }
    }
    Ok(())
}
