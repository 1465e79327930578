//! The app's settings: where uploads go (the embedded server, a remote Spool
//! server, or any TUS endpoint) and how to record. They live in
//! `settings.json` in the data folder — never the token secret, which goes to
//! the OS keyring (Secret Service) and, where no keyring answers, stays in
//! memory for this run only. SPOOL_SERVER_URL / SPOOL_TOKEN_ID /
//! SPOOL_TOKEN_SECRET override the destination for the run without being
//! saved.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{ErrorCode, IpcError};
pub use crate::models::{Destination, SecretStorage, Settings, SettingsInput, SettingsView};
use crate::sync::lock;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            destination: Destination::Embedded,
            server_url: String::new(),
            token_id: String::new(),
            endpoint_url: String::new(),
            fps: spool_record::Settings::DEFAULT_FPS,
            fragment_secs: spool_record::Settings::DEFAULT_FRAGMENT_SECS,
            crf: spool_encode::Config::DEFAULT_CRF,
            max_height: None,
            source: None,
            share_on_lan: false,
            countdown_secs: Settings::DEFAULT_COUNTDOWN_SECS,
            mic: None,
            system_audio: false,
            quality_first: false,
        }
    }
}

impl Settings {
    pub const DEFAULT_COUNTDOWN_SECS: u32 = 3;
    pub const COUNTDOWN_CHOICES: [u32; 4] = [0, 3, 5, 10];

    /// The countdown for this run: `SPOOL_COUNTDOWN` (seconds, 0 = none)
    /// overrides the setting without being saved.
    pub fn countdown(&self) -> u32 {
        std::env::var("SPOOL_COUNTDOWN")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map_or(self.countdown_secs, |s| s.min(600))
    }

    /// Reads settings.json; fields it lacks (an older version's file) take
    /// their defaults, and an unreadable file means defaults.
    pub fn load(path: &Path) -> Settings {
        let Ok(bytes) = std::fs::read(path) else {
            return Settings::default();
        };
        let merged = serde_json::from_slice::<serde_json::Value>(&bytes).and_then(|saved| {
            let mut v = serde_json::to_value(Settings::default())?;
            if let (Some(base), serde_json::Value::Object(saved)) = (v.as_object_mut(), saved) {
                base.extend(saved);
            }
            serde_json::from_value(v)
        });
        merged.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "settings.json is unreadable; using defaults");
            Settings::default()
        })
    }

    /// Writes durably and atomically: the bytes go to a temp file that is
    /// fsynced before it is renamed over settings.json, and the folder is
    /// fsynced after, so a crash or power cut leaves the old file or the new
    /// one, whole — never an empty or half-written one. A temp file left by
    /// a crash is simply overwritten (the app is alone on its data folder).
    pub fn save(&self, path: &Path) -> Result<(), IpcError> {
        let err = |e: std::io::Error| {
            IpcError::new(
                ErrorCode::LocalFile,
                format!("saving {}: {e}", path.display()),
            )
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(IpcError::internal)?;
        write_durably(path, &bytes).map_err(err)
    }

    /// Checks what a user can get wrong, with a message saying what to fix.
    pub fn validate(&self) -> Result<(), IpcError> {
        let bad = |m: &str| Err(IpcError::new(ErrorCode::InvalidSettings, m));
        match self.destination {
            Destination::Embedded => {}
            Destination::Remote => {
                if http_url(&self.server_url).is_none() {
                    return bad("the server URL must be an http:// or https:// address");
                }
                if self.token_id.trim().is_empty() {
                    return bad("a remote Spool server needs a token id");
                }
            }
            Destination::Endpoint => {
                if http_url(&self.endpoint_url).is_none() {
                    return bad("the TUS endpoint must be an http:// or https:// address");
                }
            }
        }
        if !Settings::COUNTDOWN_CHOICES.contains(&self.countdown_secs) {
            return bad("the countdown must be off, 3, 5 or 10 seconds");
        }
        validate_mic(self.mic.as_deref())?;
        let rec = self.recorder(PathBuf::new(), "synthetic")?;
        rec.validate().map_err(IpcError::from)
    }

    /// Recorder settings for `source`, writing into `output_dir`.
    pub fn recorder(
        &self,
        output_dir: PathBuf,
        source: &str,
    ) -> Result<spool_record::Settings, IpcError> {
        if !self.fragment_secs.is_finite() {
            return Err(IpcError::new(
                ErrorCode::InvalidSettings,
                "the fragment duration must be a number of seconds",
            ));
        }
        Ok(spool_record::Settings {
            source: spool_capture::SourceSpec::parse(source, None)?,
            fps: self.fps,
            fragment: std::time::Duration::from_secs_f64(self.fragment_secs.clamp(0.0, 3600.0)),
            max_height: self.max_height.filter(|h| *h > 0),
            preset: spool_encode::Config::DEFAULT_PRESET.into(),
            crf: self.crf,
            output_dir,
            // What sound to record is decided at Start (audio.rs plans it).
            audio: Default::default(),
            chunk: Some(spool_record::Settings::DEFAULT_CHUNK),
            adapt_bitrate: !self.quality_first,
        })
    }
}

/// Checks a microphone setting.
pub fn validate_mic(mic: Option<&str>) -> Result<(), IpcError> {
    match mic {
        Some(m) if m.trim().is_empty() || m.len() > 512 => Err(IpcError::new(
            ErrorCode::InvalidSettings,
            "the microphone must be \"none\", \"default\" or a device name",
        )),
        _ => Ok(()),
    }
}

/// Replaces `path` with `bytes` through an fsynced temp file and rename,
/// then fsyncs the folder so the rename itself survives a power cut.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The URL without a trailing slash, if it is an http(s) URL.
pub fn http_url(s: &str) -> Option<String> {
    let u = url::Url::parse(s.trim()).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.as_str().trim_end_matches('/').to_owned())
}

/// The remote token secret: keyring first, memory where none answers.
pub struct Secrets {
    memory: Mutex<Option<(String, String)>>,
    /// Whether the last keyring access worked.
    keyring_ok: Mutex<Option<bool>>,
}

const KEYRING_SERVICE: &str = "dev.spool.desktop";

fn account(server: &str, token_id: &str) -> String {
    format!("{token_id}@{server}")
}

impl Secrets {
    pub fn new() -> Secrets {
        Secrets {
            memory: Mutex::new(None),
            keyring_ok: Mutex::new(None),
        }
    }

    /// Keyring calls talk D-Bus synchronously: run them off the runtime.
    async fn keyring<R: Send + 'static>(
        f: impl FnOnce() -> keyring::Result<R> + Send + 'static,
    ) -> keyring::Result<R> {
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| Err(keyring::Error::PlatformFailure(Box::new(e))))
    }

    pub async fn store(&self, server: &str, token_id: &str, secret: &str) -> SecretStorage {
        let key = account(server, token_id);
        {
            let mut m = lock(&self.memory);
            *m = Some((key.clone(), secret.to_owned()));
        }
        let secret = secret.to_owned();
        let r = Self::keyring(move || {
            keyring::Entry::new(KEYRING_SERVICE, &key)?.set_password(&secret)
        })
        .await;
        self.note(&r)
    }

    pub async fn load(&self, server: &str, token_id: &str) -> Option<String> {
        let key = account(server, token_id);
        if let Some((k, s)) = lock(&self.memory).as_ref()
            && *k == key
        {
            return Some(s.clone());
        }
        let k = key.clone();
        let r =
            Self::keyring(move || keyring::Entry::new(KEYRING_SERVICE, &k)?.get_password()).await;
        self.note(&r);
        let secret = r.ok()?;
        {
            let mut m = lock(&self.memory);
            *m = Some((key, secret.clone()));
        }
        Some(secret)
    }

    fn note<T>(&self, r: &keyring::Result<T>) -> SecretStorage {
        let ok = match r {
            Ok(_) | Err(keyring::Error::NoEntry) => true,
            Err(e) => {
                // Never the secret itself: only why the keyring failed.
                tracing::info!(error = %e, "no OS keyring; the token secret stays in memory for this run");
                false
            }
        };
        {
            let mut k = lock(&self.keyring_ok);
            *k = Some(ok);
        }
        if ok {
            SecretStorage::Keyring
        } else {
            SecretStorage::Memory
        }
    }

    pub fn storage(&self) -> SecretStorage {
        match *lock(&self.keyring_ok) {
            Some(true) => SecretStorage::Keyring,
            Some(false) => SecretStorage::Memory,
            None => SecretStorage::None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn saves_loads_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        assert_eq!(Settings::load(&path), Settings::default());
        let mut s = Settings {
            destination: Destination::Remote,
            server_url: "https://spool.example/".into(),
            token_id: "tok".into(),
            ..Settings::default()
        };
        s.validate().unwrap();
        s.save(&path).unwrap();
        assert_eq!(Settings::load(&path), s);
        assert!(!std::fs::read_to_string(&path).unwrap().contains("secret"));

        s.server_url = "ftp://x".into();
        assert_eq!(s.validate().unwrap_err().code, ErrorCode::InvalidSettings);
        s.server_url = "http://localhost:1".into();
        s.token_id.clear();
        assert!(s.validate().is_err());
        let mut s = Settings {
            fragment_secs: 30.0,
            ..Settings::default()
        };
        assert!(s.validate().is_err());
        s.fragment_secs = 2.0;
        s.fps = 0;
        assert!(s.validate().is_err());

        std::fs::write(
            &path,
            br#"{"destination":"endpoint","endpoint_url":"http://t/files"}"#,
        )
        .unwrap();
        let partial = Settings::load(&path);
        assert_eq!(partial.destination, Destination::Endpoint);
        assert_eq!(partial.fps, Settings::default().fps);
        // A file from before sound: the microphone is not chosen yet.
        assert_eq!(partial.mic, None);
        assert!(!partial.system_audio);
        let chosen = Settings {
            mic: Some("alsa_input.usb".into()),
            system_audio: true,
            ..Settings::default()
        };
        chosen.save(&path).unwrap();
        assert_eq!(Settings::load(&path), chosen);
        let blank = Settings {
            mic: Some(" ".into()),
            ..Settings::default()
        };
        assert_eq!(
            blank.validate().unwrap_err().code,
            ErrorCode::InvalidSettings
        );
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(Settings::load(&path), Settings::default());
        assert_eq!(http_url(" http://a:1/ "), Some("http://a:1".into()));
    }

    #[test]
    fn a_temp_file_left_by_a_crash_breaks_neither_loading_nor_saving() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        let tmp = dir.path().join("settings.json.tmp");
        let saved = Settings {
            destination: Destination::Endpoint,
            endpoint_url: "http://tus.example/files".into(),
            fps: 24,
            ..Settings::default()
        };
        saved.save(&path).unwrap();
        // The file is whole and nothing is left beside it.
        let on_disk: Settings = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(on_disk, saved);
        assert!(!tmp.exists());

        // A crash mid-save leaves half a temp file: loading ignores it…
        std::fs::write(&tmp, br#"{"destination":"remote","server_u"#).unwrap();
        assert_eq!(Settings::load(&path), saved);
        // …also when it is all there is (a crash before the first rename).
        let fresh = tempfile::tempdir().unwrap();
        std::fs::write(fresh.path().join("settings.json.tmp"), b"{\"fps\":").unwrap();
        assert_eq!(
            Settings::load(&fresh.path().join("settings.json")),
            Settings::default()
        );
        // …and the next save replaces it and the file, whole.
        let next = Settings {
            fps: 60,
            ..saved.clone()
        };
        next.save(&path).unwrap();
        assert_eq!(Settings::load(&path), next);
        assert!(!tmp.exists());
    }
}
