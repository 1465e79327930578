//! The managed policy a team's configuration management writes for a fleet:
//! `/etc/spool/policy.json` (`SPOOL_POLICY_FILE` overrides the path), with
//! the company's server and token id, whether users may change them, whether
//! the embedded server may be used, and where updates come from (or that
//! they are off). It is read once at launch; a malformed file is reported
//! (log + a launch notice) and ignored whole, never half-applied and never a
//! crash. The token secret is never in it: the user enters it once and it
//! goes to the keyring like any other.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ErrorCode, IpcError};
use crate::models::ManagedView;
use crate::paths::EnvServer;
use crate::settings::{Destination, Settings, http_url};

/// The file's fields, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Policy {
    /// The company's Spool server.
    pub server_url: Option<String>,
    pub token_id: Option<String>,
    /// Where updates come from (precedence: SPOOL_UPDATE_URL, then this,
    /// then the endpoint built into the app).
    pub update_url: Option<String>,
    /// `false` turns updates off.
    pub updates: Option<bool>,
    /// The destination is the policy's server and users cannot change it.
    #[serde(default)]
    pub lock_destination: bool,
    /// Whether the server built into the app may be used (default yes).
    pub allow_embedded: Option<bool>,
}

/// The policy in force for this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Managed {
    /// Where it was read from (absent: no policy file).
    pub path: Option<PathBuf>,
    pub policy: Policy,
    /// Why the file at `path` was ignored.
    pub error: Option<String>,
}

/// Where the policy lives on this platform (or `SPOOL_POLICY_FILE`).
pub fn policy_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SPOOL_POLICY_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if cfg!(target_os = "macos") {
        PathBuf::from("/Library/Application Support/Spool/policy.json")
    } else if cfg!(windows) {
        let base = std::env::var_os("ProgramData").unwrap_or_else(|| "C:\\ProgramData".into());
        PathBuf::from(base).join("Spool").join("policy.json")
    } else {
        PathBuf::from("/etc/spool/policy.json")
    }
}

impl Managed {
    /// Reads the policy at [`policy_path`]; see [`Managed::read`].
    pub fn load() -> Managed {
        Managed::read(&policy_path())
    }

    /// Reads the policy at `path`: no file is no policy; an unreadable or
    /// malformed one is logged and ignored.
    pub fn read(path: &Path) -> Managed {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Managed::default(),
            Err(e) => return Managed::ignored(path, format!("it cannot be read: {e}")),
        };
        // A file any user may change would let anyone redirect a fleet's
        // uploads or turn its updates off.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o002 != 0
            {
                return Managed::ignored(path, "every user may write to it".into());
            }
        }
        match parse(&bytes) {
            Ok(policy) => {
                tracing::info!(path = %path.display(), locked = policy.lock_destination, "managed policy in force");
                Managed {
                    path: Some(path.to_owned()),
                    policy,
                    error: None,
                }
            }
            Err(why) => Managed::ignored(path, why),
        }
    }

    fn ignored(path: &Path, why: String) -> Managed {
        let error = format!(
            "The policy file {} is ignored: {why}. Spool runs on its own settings until it is fixed ({}).",
            path.display(),
            ErrorCode::InvalidPolicy
        );
        tracing::error!(path = %path.display(), "{error}");
        Managed {
            path: Some(path.to_owned()),
            policy: Policy::default(),
            error: Some(error),
        }
    }

    /// The destination is the policy's and cannot be changed.
    pub fn locked(&self) -> bool {
        self.policy.lock_destination
    }

    pub fn allows_embedded(&self) -> bool {
        self.policy.allow_embedded.unwrap_or(true)
    }

    /// What the settings dialog shows (None: no policy in force).
    pub fn view(&self) -> Option<ManagedView> {
        let path = self.path.as_ref().filter(|_| self.error.is_none())?;
        Some(ManagedView {
            path: path.display().to_string(),
            lock_destination: self.locked(),
            allow_embedded: self.allows_embedded(),
            updates_off: self.policy.updates == Some(false),
        })
    }

    /// Whether SPOOL_SERVER_URL may override the destination: with a
    /// locked destination only when it names the policy's server and token
    /// id (so a fleet's uploads cannot be sent elsewhere by an environment
    /// variable); otherwise always.
    pub fn permits_env(&self, env: &EnvServer) -> bool {
        if !self.locked() {
            return true;
        }
        let p = &self.policy;
        let same = p.server_url.as_deref().and_then(http_url).as_deref() == Some(env.url.as_str())
            && p.token_id.as_deref() == Some(env.token_id.as_str());
        if !same {
            tracing::warn!(
                url = %env.url,
                "SPOOL_SERVER_URL is ignored: the managed policy locks the destination to another server"
            );
        }
        same
    }

    /// Settings the window wants saved, as the policy allows them: a locked
    /// destination is put back to the policy's (the rest is the user's); the
    /// built-in server is refused where the policy forbids it.
    pub fn enforce(&self, s: Settings) -> Result<Settings, IpcError> {
        if s.destination == Destination::Embedded && !self.allows_embedded() {
            return Err(IpcError::new(
                ErrorCode::InvalidSettings,
                "your organization's policy does not allow the server built into Spool: choose a remote server",
            ));
        }
        if self.locked() {
            return Ok(self.apply(s, false));
        }
        Ok(s)
    }

    /// The settings as the policy has them: with `lock_destination` the
    /// destination is the policy's server whatever was saved; without it the
    /// policy's server is only the first-run default (`fresh`: no settings
    /// file yet), and a saved embedded destination the policy forbids falls
    /// back to the policy's server.
    pub fn apply(&self, mut s: Settings, fresh: bool) -> Settings {
        let p = &self.policy;
        let Some(server) = p.server_url.as_deref().and_then(http_url) else {
            return s;
        };
        let forbidden = s.destination == Destination::Embedded && !self.allows_embedded();
        if p.lock_destination || fresh || forbidden {
            s.destination = Destination::Remote;
            s.server_url = server;
            s.token_id = p.token_id.clone().unwrap_or_default();
        }
        s
    }
}

/// Parses and checks a policy: the JSON must be an object of the known
/// fields with the right types, and what it names must make sense.
fn parse(bytes: &[u8]) -> Result<Policy, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not valid JSON ({e})"))?;
    let serde_json::Value::Object(fields) = &value else {
        return Err("it must be a JSON object".into());
    };
    const KNOWN: [&str; 6] = [
        "server_url",
        "token_id",
        "update_url",
        "updates",
        "lock_destination",
        "allow_embedded",
    ];
    for k in fields.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        // A newer policy's field: this version ignores it, and says so.
        tracing::warn!(field = %k, "the policy file has a field this version does not know; ignoring it");
    }
    let policy: Policy =
        serde_json::from_value(value).map_err(|e| format!("a field has the wrong type ({e})"))?;
    if let Some(u) = &policy.server_url
        && http_url(u).is_none()
    {
        return Err(format!("server_url {u:?} is not an http(s) address"));
    }
    if let Some(u) = &policy.update_url
        && http_url(u).is_none()
    {
        return Err(format!("update_url {u:?} is not an http(s) address"));
    }
    if policy.lock_destination && policy.server_url.is_none() {
        return Err("lock_destination needs a server_url to lock to".into());
    }
    if policy.server_url.is_some()
        && policy
            .token_id
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
    {
        return Err("server_url needs a token_id".into());
    }
    if policy.allow_embedded == Some(false) && policy.server_url.is_none() {
        return Err("allow_embedded is false but no server_url says where uploads go".into());
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn read(text: &str) -> Managed {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, text).unwrap();
        Managed::read(&path)
    }

    #[test]
    fn no_file_is_no_policy() {
        let dir = tempfile::tempdir().unwrap();
        let m = Managed::read(&dir.path().join("policy.json"));
        assert_eq!(m, Managed::default());
        assert_eq!(m.apply(Settings::default(), true), Settings::default());
    }

    #[test]
    fn a_locked_destination_wins_over_saved_settings() {
        let m = read(
            r#"{"server_url":"https://spool.corp/","token_id":"fleet","lock_destination":true,
                "updates":false,"allow_embedded":false,"future_field":1}"#,
        );
        assert_eq!(m.error, None);
        assert!(m.locked());
        assert!(!m.allows_embedded());
        assert_eq!(m.policy.updates, Some(false));
        let saved = Settings {
            destination: Destination::Endpoint,
            endpoint_url: "http://tus.example/files".into(),
            fps: 24,
            ..Settings::default()
        };
        let s = m.apply(saved, false);
        assert_eq!(s.destination, Destination::Remote);
        assert_eq!(s.server_url, "https://spool.corp");
        assert_eq!(s.token_id, "fleet");
        // Everything else stays the user's.
        assert_eq!(s.fps, 24);
    }

    #[test]
    fn an_unlocked_policy_is_the_first_run_default_only() {
        let m = read(r#"{"server_url":"https://spool.corp","token_id":"fleet"}"#);
        assert_eq!(
            m.apply(Settings::default(), true).server_url,
            "https://spool.corp"
        );
        let own = Settings {
            destination: Destination::Endpoint,
            endpoint_url: "http://tus.example/files".into(),
            ..Settings::default()
        };
        assert_eq!(m.apply(own.clone(), false), own);
        // …unless it forbids what was saved.
        let m =
            read(r#"{"server_url":"https://spool.corp","token_id":"f","allow_embedded":false}"#);
        let s = m.apply(Settings::default(), false);
        assert_eq!(s.destination, Destination::Remote);
    }

    #[cfg(unix)]
    #[test]
    fn a_policy_every_user_may_write_is_ignored() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(
            &path,
            r#"{"server_url":"https://evil.example","token_id":"x"}"#,
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let m = Managed::read(&path);
        assert!(
            m.error.as_deref().unwrap().contains("every user may write"),
            "{m:?}"
        );
        assert_eq!(m.policy, Policy::default());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(Managed::read(&path).error, None);
    }

    #[test]
    fn a_malformed_policy_is_ignored_with_a_reason() {
        for (text, why) in [
            ("{not json", "not valid JSON"),
            ("[1]", "JSON object"),
            (r#"{"lock_destination":"yes"}"#, "wrong type"),
            (
                r#"{"server_url":"ftp://x","token_id":"t"}"#,
                "not an http(s) address",
            ),
            (r#"{"lock_destination":true}"#, "needs a server_url"),
            (r#"{"server_url":"https://s"}"#, "needs a token_id"),
            (r#"{"update_url":"nope"}"#, "update_url"),
            (r#"{"allow_embedded":false}"#, "allow_embedded"),
        ] {
            let m = read(text);
            let e = m
                .error
                .as_deref()
                .unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(e.contains(why), "{text}: {e}");
            assert!(
                e.contains("is ignored") && e.contains("ERR_INVALID_POLICY"),
                "{e}"
            );
            assert_eq!(m.policy, Policy::default());
            assert!(!m.locked() && m.allows_embedded());
        }
    }
}
