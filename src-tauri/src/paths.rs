//! Where the app keeps its files (the platform's folders, or one folder
//! under SPOOL_DATA_DIR for isolated runs) and the destination the
//! environment gives a run (SPOOL_SERVER_URL / SPOOL_TOKEN_ID /
//! SPOOL_TOKEN_SECRET).

use std::path::PathBuf;

use tauri::{AppHandle, Manager as _, Runtime};

use crate::settings::http_url;

/// Where the app keeps its files.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data: PathBuf,
    pub journal: PathBuf,
    pub server: PathBuf,
    pub recordings: PathBuf,
    pub logs: PathBuf,
    pub settings: PathBuf,
}

/// `SPOOL_DATA_DIR`, for isolated runs.
pub fn isolated_data_dir() -> Option<PathBuf> {
    std::env::var_os("SPOOL_DATA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The app's data folder: `SPOOL_DATA_DIR`, else the platform's data folder
/// for the app's `identifier` — the very folder Tauri's `app_data_dir`
/// names, known here before the app (and its window) exists, so the
/// single-instance lock is taken first.
pub fn data_dir(identifier: &str) -> anyhow::Result<PathBuf> {
    match isolated_data_dir() {
        Some(d) => Ok(d),
        None => dirs::data_dir()
            .map(|d| d.join(identifier))
            .ok_or_else(|| anyhow::anyhow!("this system has no data folder for applications")),
    }
}

impl Paths {
    /// The app's folders; `isolated` keeps every one under `data`.
    pub fn resolve<R: Runtime>(
        app: &AppHandle<R>,
        data: PathBuf,
        isolated: bool,
    ) -> anyhow::Result<Paths> {
        let logs = if isolated {
            data.join("logs")
        } else {
            app.path().app_log_dir()?
        };
        // Recordings are the user's videos unless the run is isolated.
        let recordings = match (isolated, app.path().video_dir()) {
            (false, Ok(v)) => v.join("Spool"),
            _ => data.join("recordings"),
        };
        let paths = Paths {
            journal: data.join("journal"),
            server: data.join("server"),
            settings: data.join("settings.json"),
            recordings,
            logs,
            data,
        };
        for d in [&paths.data, &paths.journal, &paths.recordings, &paths.logs] {
            std::fs::create_dir_all(d)?;
        }
        Ok(paths)
    }
}

/// The destination given by the environment for this run.
#[derive(Clone)]
pub struct EnvServer {
    pub url: String,
    pub token_id: String,
    pub token_secret: String,
}

impl EnvServer {
    pub fn from_env() -> Option<EnvServer> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = var("SPOOL_SERVER_URL")?;
        let url = match http_url(&url) {
            Some(u) => u,
            None => {
                tracing::error!(url, "SPOOL_SERVER_URL is not an http(s) URL; ignoring it");
                return None;
            }
        };
        Some(EnvServer {
            url,
            token_id: var("SPOOL_TOKEN_ID").unwrap_or_default(),
            token_secret: var("SPOOL_TOKEN_SECRET").unwrap_or_default(),
        })
    }
}
