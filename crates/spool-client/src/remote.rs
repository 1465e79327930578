//! Changing and deleting what was uploaded, on the server. Spool's asset
//! API changes an asset's metadata (`PATCH /v1/assets/{id}` with the API
//! credentials: a rename is `{"title": Some(…)}`); an unknown or deleted
//! asset is then an error (404 `ERR_ASSET_NOT_FOUND`), since nothing was
//! renamed. Deleting is a `DELETE` of the upload URL (which its signature
//! authorises while the upload is unfinished) in the protocol the upload
//! speaks, asked with one OPTIONS as a session asks it: a TUS termination,
//! which any TUS server with the termination extension honours, or the IETF
//! draft's cancellation; and Spool's asset API (`DELETE /v1/assets/{id}` with the API
//! credentials, for a completed upload). An answer of 404 or 410 means the
//! thing is already gone, which is what the caller wanted: it counts as
//! deleted. Errors keep the server's `ERR_*` code ([`ClientError::code`]);
//! a server that cannot be reached is [`ClientError::Unreachable`], so a
//! caller can keep the deletion and retry it later. Error bodies are read up
//! to a small limit, and no message names a signed URL.

use std::collections::BTreeMap;

use spool_proto::{ErrorBody, ErrorCode};

use crate::error::{ClientError, Result};
use crate::tus::Timeouts;
use crate::wire::{Decided, Protocol, Wire};

/// How a deletion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The server deleted it now.
    Deleted,
    /// The server no longer had it (404 or 410).
    AlreadyGone,
}

/// An asset's metadata as the server holds it after a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AssetMetadata {
    /// The title the server shows (the `title` key, else `name`), if any.
    #[serde(default)]
    pub title: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// The most of a successful answer's body that is read (an asset view with
/// the server's largest metadata fits with room to spare).
const VIEW_BODY_LIMIT: usize = 256 * 1024;

/// The most of an error body that is read.
const ERROR_BODY_LIMIT: usize = 4096;

/// Changes and deletes uploads and assets on servers.
#[derive(Clone)]
pub struct Remote {
    http: reqwest::Client,
    timeouts: Timeouts,
}

impl Remote {
    pub fn new(timeouts: Timeouts) -> Result<Remote> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .user_agent(concat!("spool/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::network)?;
        Ok(Remote { http, timeouts })
    }

    /// Deletes the upload at `url` in whichever protocol it speaks
    /// ([`Protocol::Auto`]); the URL's signature is its authorisation.
    pub async fn delete_upload(&self, url: &str) -> Result<Removed> {
        self.delete_upload_with(url, Protocol::Auto).await
    }

    /// Deletes the upload at `url` in `protocol`: TUS at once; otherwise
    /// after the OPTIONS that tells whether the upload speaks the draft.
    pub async fn delete_upload_with(&self, url: &str, protocol: Protocol) -> Result<Removed> {
        let wire = match protocol {
            Protocol::Tus => Wire::Tus,
            _ => {
                let options = self
                    .http
                    .request(reqwest::Method::OPTIONS, url)
                    .headers(crate::wire::discovery_headers(protocol));
                let resp = self.send(options).await?;
                match crate::wire::decide(protocol, resp.status().as_u16(), resp.headers())? {
                    Decided::Speak(found) => found.wire,
                    Decided::Transient => return Err(self.error_of(resp).await),
                }
            }
        };
        self.delete(self.http.delete(url).headers(wire.tag())).await
    }

    /// Deletes asset `asset_id` on the Spool server at `server` through its
    /// API (`DELETE /v1/assets/{id}`, HTTP Basic).
    pub async fn delete_asset(
        &self,
        server: &str,
        token_id: &str,
        secret: &str,
        asset_id: &str,
    ) -> Result<Removed> {
        let url = asset_url(server, asset_id)?;
        let req = self.http.delete(url).basic_auth(token_id, Some(secret));
        self.delete(req).await
    }

    /// Changes the metadata of asset `asset_id` on the Spool server at
    /// `server` (`PATCH /v1/assets/{id}`, HTTP Basic): each `Some` sets its
    /// key, each `None` removes it, other keys stay. Returns the metadata
    /// and title the server holds afterwards.
    pub async fn update_asset_metadata(
        &self,
        server: &str,
        token_id: &str,
        secret: &str,
        asset_id: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<AssetMetadata> {
        let url = asset_url(server, asset_id)?;
        let req = self
            .http
            .patch(url)
            .basic_auth(token_id, Some(secret))
            .json(&serde_json::json!({ "metadata": changes }));
        let mut resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(self.error_of(resp).await);
        }
        let mut body = Vec::new();
        let read = async {
            while let Some(chunk) = resp.chunk().await.map_err(ClientError::network)? {
                body.extend_from_slice(&chunk);
                if body.len() > VIEW_BODY_LIMIT {
                    return Err(ClientError::Protocol(format!(
                        "the asset's answer is larger than {VIEW_BODY_LIMIT} bytes"
                    )));
                }
            }
            Ok(())
        };
        tokio::time::timeout(self.timeouts.response, read)
            .await
            .map_err(|_| {
                ClientError::Network(format!(
                    "the answer did not arrive within {:?}",
                    self.timeouts.response
                ))
            })??;
        serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("the asset's answer is not an asset: {e}")))
    }

    async fn delete(&self, req: reqwest::RequestBuilder) -> Result<Removed> {
        let resp = self.send(req).await?;
        match resp.status().as_u16() {
            200..=299 => Ok(Removed::Deleted),
            404 | 410 => Ok(Removed::AlreadyGone),
            _ => Err(self.error_of(resp).await),
        }
    }

    /// Sends `req`, waiting at most the response timeout for the answer's
    /// head; a connection that could not be made is
    /// [`ClientError::Unreachable`] (the request was never sent).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        match tokio::time::timeout(self.timeouts.response, req.send()).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if e.is_connect() => Err(ClientError::Unreachable(
                ClientError::network(e).to_string(),
            )),
            Ok(Err(e)) => Err(ClientError::network(e)),
            Err(_) => Err(ClientError::Network(format!(
                "no answer within {:?}",
                self.timeouts.response
            ))),
        }
    }

    /// The server's error, from at most [`ERROR_BODY_LIMIT`] bytes of its
    /// body read within the response timeout.
    async fn error_of(&self, mut resp: reqwest::Response) -> ClientError {
        let status = resp.status().as_u16();
        let retry_after = crate::tus::retry_after(resp.headers());
        let mut body = Vec::new();
        let read = async {
            while let Ok(Some(chunk)) = resp.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= ERROR_BODY_LIMIT {
                    body.truncate(ERROR_BODY_LIMIT);
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(self.timeouts.response, read).await;
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => (b.error_code(), b.message),
            Err(_) => (
                None,
                String::from_utf8_lossy(&body[..body.len().min(200)])
                    .trim()
                    .to_owned(),
            ),
        };
        ClientError::Server {
            status,
            code: code.or(match status {
                401 => Some(ErrorCode::Unauthorized),
                _ => None,
            }),
            message,
            retry_after,
        }
    }
}

/// `{server}/v1/assets/{asset_id}`, the id escaped as one path segment.
fn asset_url(server: &str, asset_id: &str) -> Result<url::Url> {
    let mut url = url::Url::parse(server.trim_end_matches('/'))
        .map_err(|_| ClientError::Invalid("the server address is not a URL".into()))?;
    url.path_segments_mut()
        .map_err(|_| ClientError::Invalid("the server address cannot have a path".into()))?
        .pop_if_empty()
        .extend(["v1", "assets", asset_id]);
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    const ID: &str = "remote-test";
    const SECRET: &str = "remote-test-secret-0123";

    /// A real spool-server on a loopback port, in its own temp dir.
    async fn server() -> (
        String,
        tempfile::TempDir,
        tokio_util::sync::CancellationToken,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = spool_server::Config::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.credentials = Some(spool_server::config::Credentials {
            token_id: ID.into(),
            token_secret: SECRET.into(),
        });
        let server = spool_server::Server::bind(config).await.unwrap();
        let base = format!("http://{}", server.addr);
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(server.run(async move { token.cancelled().await }));
        (base, dir, stop)
    }

    async fn on_demand(base: &str) -> serde_json::Value {
        let resp = reqwest::Client::new()
            .post(format!("{base}/v1/on-demand"))
            .basic_auth(ID, Some(SECRET))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    async fn asset_status(base: &str, asset: &str) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .get(format!("{base}/v1/assets/{asset}"))
            .basic_auth(ID, Some(SECRET))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    fn remote() -> Remote {
        Remote::new(Timeouts::default()).unwrap()
    }

    /// The client reads the server's on-demand answer through the shared
    /// `OnDemandResponse`, so every field the server sends arrives.
    #[tokio::test]
    async fn the_client_reads_the_servers_on_demand_answer() {
        let (base, _dir, _stop) = server().await;
        let tus = crate::tus::Tus::new(Timeouts::default()).unwrap();
        let created = tus
            .on_demand(&base, ID, SECRET, &serde_json::json!({}))
            .await
            .unwrap();
        assert!(created.url.starts_with(&base), "{}", created.url);
        let asset = created.asset_id.unwrap();
        assert!(!asset.is_empty());
        assert!(created.share_url.unwrap().contains(&asset));
    }

    #[tokio::test]
    async fn terminating_an_unfinished_upload_deletes_its_asset() {
        let (base, _dir, _stop) = server().await;
        let created = on_demand(&base).await;
        let url = created["upload_url"].as_str().unwrap();
        let asset = created["asset_id"].as_str().unwrap();
        assert_eq!(remote().delete_upload(url).await.unwrap(), Removed::Deleted);
        let (status, meta) = asset_status(&base, asset).await;
        assert!(
            status == 404 || meta["status"] == "deleted",
            "{status} {meta}"
        );
        // Again: already gone is still deleted.
        assert_eq!(
            remote().delete_upload(url).await.unwrap(),
            Removed::AlreadyGone
        );
        // Spool's upload URLs speak both protocols; each deletes.
        for protocol in [Protocol::Tus, Protocol::Ietf] {
            let created = on_demand(&base).await;
            let url = created["upload_url"].as_str().unwrap();
            let r = remote().delete_upload_with(url, protocol).await.unwrap();
            assert_eq!(r, Removed::Deleted, "{protocol:?}");
            let (status, meta) = asset_status(&base, created["asset_id"].as_str().unwrap()).await;
            assert!(
                status == 404 || meta["status"] == "deleted",
                "{protocol:?}: {status} {meta}"
            );
        }
    }

    #[tokio::test]
    async fn deleting_a_completed_asset_through_the_api() {
        let (base, _dir, _stop) = server().await;
        let created = on_demand(&base).await;
        let url = created["upload_url"].as_str().unwrap();
        let asset = created["asset_id"].as_str().unwrap();
        let resp = reqwest::Client::new()
            .patch(url)
            .header("tus-resumable", "1.0.0")
            .header("upload-offset", "0")
            .header("upload-length", "5")
            .header("content-type", "application/offset+octet-stream")
            .body("hello")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let status = asset_status(&base, asset).await.1["status"].clone();
        assert!(status == "processing" || status == "errored", "{status}");

        // Wrong credentials: refused with the server's code, nothing deleted.
        let e = remote()
            .delete_asset(&base, ID, "wrong", asset)
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(401), Some(ErrorCode::Unauthorized))
        );
        let status = asset_status(&base, asset).await.1["status"].clone();
        assert!(status == "processing" || status == "errored", "{status}");

        let r = remote()
            .delete_asset(&base, ID, SECRET, asset)
            .await
            .unwrap();
        assert_eq!(r, Removed::Deleted);
        let (status, meta) = asset_status(&base, asset).await;
        assert!(
            status == 404 || meta["status"] == "deleted",
            "{status} {meta}"
        );
        let r = remote()
            .delete_asset(&base, ID, SECRET, "00000000000000000000000000000000")
            .await
            .unwrap();
        assert_eq!(r, Removed::AlreadyGone);
    }

    fn changes(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect()
    }

    #[tokio::test]
    async fn renaming_an_asset_through_the_api() {
        let (base, _dir, _stop) = server().await;
        let asset = on_demand(&base).await["asset_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let got = remote()
            .update_asset_metadata(
                &base,
                ID,
                SECRET,
                &asset,
                &changes(&[("title", Some("Standup")), ("project", Some("spool"))]),
            )
            .await
            .unwrap();
        assert_eq!(got.title.as_deref(), Some("Standup"));
        // A `None` removes its key; the others stay.
        let got = remote()
            .update_asset_metadata(&base, ID, SECRET, &asset, &changes(&[("title", None)]))
            .await
            .unwrap();
        assert_eq!(
            got,
            AssetMetadata {
                title: None,
                metadata: [("project".to_owned(), "spool".to_owned())].into(),
            }
        );
        assert_eq!(
            asset_status(&base, &asset).await.1["metadata"]["project"],
            "spool"
        );

        let rename = changes(&[("title", Some("x"))]);
        let e = remote()
            .update_asset_metadata(&base, ID, "wrong", &asset, &rename)
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(401), Some(ErrorCode::Unauthorized))
        );
        let e = remote()
            .update_asset_metadata(&base, ID, SECRET, &asset, &changes(&[("", Some("x"))]))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(400), Some(ErrorCode::InvalidRequest))
        );
        // Unlike a deletion, renaming what is gone did not happen.
        let e = remote()
            .update_asset_metadata(
                &base,
                ID,
                SECRET,
                "00000000000000000000000000000000",
                &rename,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (Some(404), Some(ErrorCode::AssetNotFound))
        );
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_unreachable() {
        let (base, _dir, stop) = server().await;
        let created = on_demand(&base).await;
        let url = created["upload_url"].as_str().unwrap().to_owned();
        stop.cancel();
        // The listener closes once the server task has stopped.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let e = loop {
            match remote().delete_upload(&url).await {
                Err(e @ ClientError::Unreachable(_)) => break e,
                other => {
                    assert!(std::time::Instant::now() < deadline, "{other:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert!(!e.to_string().contains("sig="), "{e}");
        let e = remote()
            .delete_asset(&base, ID, SECRET, "a")
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
        let e = remote()
            .update_asset_metadata(&base, ID, SECRET, "a", &changes(&[("title", None)]))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Unreachable(_)), "{e:?}");
    }
}
