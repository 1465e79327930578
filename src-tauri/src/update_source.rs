//! Where updates come from and which key they must be signed with: the
//! endpoint by precedence (SPOOL_UPDATE_URL, then the managed policy's
//! `update_url` or `updates: false`, then SPOOL_UPDATE_ENDPOINT built in at
//! compile time), https or loopback http only, the public key built into
//! the app, and the plugin configuration those give.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::policy::Managed;

/// Where an update stands; the words the status line starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
    /// Updates are off (the managed policy says `updates: false`).
    Disabled,
    Checking,
    UpToDate,
    /// A newer version is announced; it downloads when the app is idle.
    Available,
    Downloading,
    /// Downloaded and its signature checked: ready to install.
    Verified,
    /// Install asked for; waits for the recording and uploads to finish.
    Waiting,
    Installing,
    Failed,
}

/// Where updates come from, and with which key they must be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// None: updates are off or no endpoint is known (`reason` says which).
    pub endpoint: Option<Url>,
    pub reason: Option<(UpdateState, String)>,
    /// The minisign public key (Tauri's base64 form).
    pub pubkey: String,
}

/// The public key built into the app (SPOOL_UPDATER_PUBKEY at compile
/// time). A debug build takes one from the environment at run time (tests
/// sign with throwaway keys); a release build only when none is built in,
/// so no environment can replace a team's key.
pub fn pubkey() -> String {
    let built = option_env!("SPOOL_UPDATER_PUBKEY").unwrap_or("").trim();
    let runtime = std::env::var("SPOOL_UPDATER_PUBKEY").unwrap_or_default();
    let runtime = runtime.trim();
    if !runtime.is_empty() && (cfg!(debug_assertions) || built.is_empty()) {
        return runtime.to_owned();
    }
    built.to_owned()
}

impl Source {
    /// Precedence: SPOOL_UPDATE_URL, then the policy's `update_url` or
    /// `updates: false`, then SPOOL_UPDATE_ENDPOINT built in at compile time.
    pub fn resolve(managed: &Managed) -> Source {
        let env = std::env::var("SPOOL_UPDATE_URL").ok();
        let built = option_env!("SPOOL_UPDATE_ENDPOINT").map(str::to_owned);
        Source::from_parts(env, managed, built, pubkey())
    }

    fn from_parts(
        env: Option<String>,
        managed: &Managed,
        built: Option<String>,
        pubkey: String,
    ) -> Source {
        let off = |state, why: &str| Source {
            endpoint: None,
            reason: Some((state, why.to_owned())),
            pubkey: pubkey.clone(),
        };
        let chosen = if let Some(u) = env.filter(|u| !u.trim().is_empty()) {
            u
        } else if managed.policy.updates == Some(false) {
            return off(
                UpdateState::Disabled,
                "updates are turned off by your organization",
            );
        } else if let Some(u) = managed.policy.update_url.clone() {
            u
        } else if let Some(u) = built.filter(|u| !u.trim().is_empty()) {
            u
        } else {
            return off(UpdateState::UpToDate, "this build has no update server");
        };
        match endpoint_url(&chosen) {
            Ok(url) => Source {
                endpoint: Some(url),
                reason: None,
                pubkey,
            },
            Err(why) => off(UpdateState::UpToDate, &why),
        }
    }
}

/// An update endpoint must be https — or http on this machine (a local
/// update server in tests or on a build box). The signature guards the
/// bytes either way; https also keeps the announcement private.
fn endpoint_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("the update URL is not valid ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(format!(
            "the update URL {} must be https (http only on this machine)",
            url.origin().ascii_serialization()
        )),
    }
}

/// The plugin's configuration: the key and endpoint are given per check
/// (they depend on the policy); http is let through to the plugin because
/// [`endpoint_url`] already decided; the version in the signature must be
/// the one announced.
pub fn plugin_config() -> serde_json::Value {
    serde_json::json!({
        "pubkey": pubkey(),
        "endpoints": [],
        "requireSignedVersion": true,
        "allowDowngrades": false,
        "dangerousInsecureTransportProtocol": true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::policy::Policy;

    fn managed(p: Policy) -> Managed {
        Managed {
            path: None,
            policy: p,
            error: None,
        }
    }

    #[test]
    fn the_endpoint_follows_the_precedence() {
        let none = managed(Policy::default());
        let k = || "key".to_owned();
        let s = Source::from_parts(
            Some("https://qa.example/latest.json".into()),
            &none,
            Some("https://built/x".into()),
            k(),
        );
        assert_eq!(
            s.endpoint.unwrap().as_str(),
            "https://qa.example/latest.json"
        );
        let pol = managed(Policy {
            update_url: Some("https://corp.example/spool/latest.json".into()),
            ..Policy::default()
        });
        let s = Source::from_parts(None, &pol, Some("https://built/x".into()), k());
        assert_eq!(s.endpoint.unwrap().host_str(), Some("corp.example"));
        let off = managed(Policy {
            updates: Some(false),
            ..Policy::default()
        });
        let s = Source::from_parts(None, &off, Some("https://built/x".into()), k());
        assert_eq!(s.endpoint, None);
        assert_eq!(s.reason.unwrap().0, UpdateState::Disabled);
        // The QA override wins even over a policy that turns updates off.
        let s = Source::from_parts(
            Some("http://127.0.0.1:9/latest.json".into()),
            &off,
            None,
            k(),
        );
        assert!(s.endpoint.is_some());
        let s = Source::from_parts(None, &none, Some("https://built/latest.json".into()), k());
        assert_eq!(s.endpoint.unwrap().host_str(), Some("built"));
        let s = Source::from_parts(None, &none, None, k());
        assert_eq!(s.reason.unwrap().0, UpdateState::UpToDate);
    }

    #[test]
    fn plain_http_only_on_this_machine() {
        assert!(endpoint_url("http://127.0.0.1:8/latest.json").is_ok());
        assert!(endpoint_url("http://localhost/latest.json").is_ok());
        assert!(endpoint_url("http://[::1]:80/l").is_ok());
        assert!(endpoint_url("https://updates.example/l").is_ok());
        let e = endpoint_url("http://updates.example/l?token=secret").unwrap_err();
        assert!(e.contains("must be https") && !e.contains("secret"), "{e}");
        assert!(endpoint_url("file:///etc/passwd").is_err());
        assert!(endpoint_url("not a url").is_err());
    }
}
