//! Creating the upload resource on the session's [`Target`]: Spool's
//! on-demand API, any TUS creation endpoint, or an attached upload URL.
//! A creation is retried only where it cannot already have created one
//! ([`super::recovery::creation_may_retry`]), so a lost answer never leaves
//! two uploads behind.

use spool_proto::ErrorCode;

use super::recovery::creation_may_retry;
use super::worker::{Failures, Worker};
use super::{Event, Target};
use crate::error::{ClientError, Result};

impl Worker {
    /// Creates the upload resource, retrying only what cannot have created
    /// one already (a connection never made, an answer saying nothing was done).
    pub(super) async fn create(&mut self) -> Result<String> {
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
                    self.tus
                        .create(url, headers, &spool_proto::metadata::encode(&md))
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
