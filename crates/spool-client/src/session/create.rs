//! Creating the upload resource on the session's [`Target`] (Spool's
//! on-demand API, any creation endpoint, or an attached upload URL) and
//! discovering the protocol it speaks: a creation endpoint is asked before
//! the upload is created in its protocol, any other upload once it exists.
//! A creation is retried only where it cannot already have created one
//! ([`super::recovery::creation_may_retry`]), so a lost answer never leaves
//! two uploads behind.

use spool_proto::ErrorCode;

use super::recovery::{Recovery, creation_may_retry};
use super::worker::{Failures, Worker};
use super::{Event, State, Target};
use crate::error::{ClientError, Result};
use crate::wire::{Discovery, Wire};

impl Worker {
    /// Asks `url` which protocol to speak (see [`crate::tus::Tus::discover`]),
    /// again and again while the server cannot say, as a HEAD would be; a
    /// server without the protocol asked for ends the session.
    pub(super) async fn discover(
        &mut self,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<Discovery> {
        let mut failures = Failures::default();
        loop {
            let e = match self.tus.discover(url, self.options.protocol, headers).await {
                Ok(found) => {
                    tracing::info!(protocol = found.wire.as_str(), "upload protocol");
                    if failures.count > 0 {
                        self.set_state(State::Uploading, None).await;
                        self.status.send_modify(|s| {
                            s.attempt = 0;
                            s.next_retry_in_ms = None;
                        });
                    }
                    return Ok(found);
                }
                Err(e @ ClientError::Unsupported(_)) => return Err(e),
                Err(e) => e,
            };
            match self.classify(e, &failures) {
                Recovery::Head { delay, error, .. } | Recovery::Retry { delay, error } => {
                    self.note_failure(&mut failures, &error, delay).await;
                    self.sleep(delay).await?;
                }
                Recovery::Stall { delay, error } => {
                    self.note_stall(&mut failures, &error, delay).await;
                    self.sleep(delay).await?;
                }
                Recovery::Fatal(e) => return Err(e),
                // Only failures that say nothing reach here (no 404 or 410).
                Recovery::Gone(why) => {
                    return Err(ClientError::Protocol(format!(
                        "asking for the protocol: {why}"
                    )));
                }
            }
        }
    }

    /// Creates the upload resource and learns its protocol.
    pub(super) async fn create(&mut self) -> Result<(String, Discovery)> {
        let endpoint = match &self.target {
            Target::Endpoint { url, headers } => {
                let (url, headers) = (url.clone(), headers.clone());
                Some(self.discover(&url, &headers).await?)
            }
            _ => None,
        };
        // Only a creation endpoint speaks the upload protocol; the on-demand
        // API is Spool's own and an attached URL is not created.
        let wire = endpoint.map_or(Wire::Tus, |d| d.wire);
        let url = self.create_upload(wire).await?;
        let found = match endpoint {
            Some(found) => found,
            None => self.discover(&url, &[]).await?,
        };
        Ok((url, found))
    }

    /// Creates the upload resource, retrying only what cannot have created
    /// one already (a connection never made, an answer saying nothing was done).
    async fn create_upload(&mut self, wire: Wire) -> Result<String> {
        let mut failures = Failures::default();
        loop {
            let result = match &self.target {
                Target::OnDemand {
                    server,
                    token_id,
                    token_secret,
                } => {
                    let md: serde_json::Map<String, serde_json::Value> = self
                        .options
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone().into()))
                        .collect();
                    self.tus
                        .on_demand(
                            server,
                            token_id,
                            token_secret,
                            &serde_json::Value::Object(md),
                        )
                        .await
                }
                Target::Endpoint { url, headers } => {
                    let md: Vec<(String, Vec<u8>)> = self
                        .options
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                        .collect();
                    let filename = self
                        .options
                        .metadata
                        .iter()
                        .find(|(k, _)| k == "filename")
                        .map(|(_, v)| v.as_str());
                    self.tus
                        .create(
                            wire,
                            url,
                            headers,
                            &spool_proto::metadata::encode(&md),
                            filename,
                        )
                        .await
                }
                Target::UploadUrl(url) => {
                    // Attached, not created: journal it all the same, so a
                    // crash before the first PATCH can still be resumed.
                    let url = url.clone();
                    self.shared
                        .journal
                        .set_created(&self.shared.id, &url, None, None)
                        .await?;
                    self.rec.upload_url = Some(url.clone());
                    return Ok(url);
                }
            };
            match result {
                Ok(c) => {
                    self.shared
                        .journal
                        .set_created(
                            &self.shared.id,
                            &c.url,
                            c.asset_id.as_deref(),
                            c.share_url.as_deref(),
                        )
                        .await?;
                    self.rec.upload_url = Some(c.url.clone());
                    self.emit(Event::Created {
                        asset_id: c.asset_id.clone(),
                        share_url: c.share_url.clone(),
                    });
                    let link = c.share_url.clone();
                    self.status.send_modify(|s| s.share_url = link);
                    self.rec.asset_id = c.asset_id;
                    self.rec.share_url = c.share_url;
                    return Ok(c.url);
                }
                Err(e) => {
                    if !creation_may_retry(&e) {
                        return Err(match e {
                            ClientError::Network(m) => ClientError::Network(format!(
                                "{m}; the upload may or may not have been created, so it is not created again blindly: run `spool resume` to try again"
                            )),
                            e => e,
                        });
                    }
                    let retry_after = e.retry_after();
                    // Same reporting as for PATCHes: reconnecting, then
                    // stalled after the cap (at once for 507), retrying
                    // until stopped.
                    if e.code() == Some(ErrorCode::InsufficientStorage) {
                        let delay = self.options.retry.stalled_delay(retry_after);
                        self.note_stall(&mut failures, &e.to_string(), delay).await;
                        self.sleep(delay).await?;
                        continue;
                    }
                    let delay = if failures.stalled {
                        self.options.retry.max_delay
                    } else {
                        self.options.retry.delay(failures.count + 1, retry_after)
                    };
                    self.note_failure(&mut failures, &e.to_string(), delay)
                        .await;
                    self.sleep(delay).await?;
                }
            }
        }
    }
}
