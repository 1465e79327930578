//! TUS for the suites: a minimal client over real HTTP ([`Tus`]: create,
//! HEAD, PATCH, GET with the test credentials) and the third-party server
//! @tus/server from npm ([`node_tus`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Proc, basic_auth, node, sha256_hex, upload_id};

/// Minimal TUS over HTTP for tests.
#[derive(Clone)]
pub struct Tus {
    pub http: reqwest::Client,
}

impl Default for Tus {
    fn default() -> Self {
        Tus {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }
}

impl Tus {
    /// Creates an upload with the test credentials; `None` defers the length.
    pub async fn create(&self, endpoint: &str, length: Option<u64>) -> String {
        let mut req = self
            .http
            .post(endpoint)
            .header("tus-resumable", "1.0.0")
            .header("authorization", basic_auth());
        req = match length {
            Some(l) => req.header("upload-length", l),
            None => req.header("upload-defer-length", "1"),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// HEAD: (status, offset, length).
    pub async fn head(&self, url: &str) -> (u16, Option<u64>, Option<u64>) {
        let resp = self
            .http
            .head(url)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        let num = |h: &str| {
            resp.headers()
                .get(h)
                .map(|v| v.to_str().unwrap().parse().unwrap())
        };
        (
            resp.status().as_u16(),
            num("upload-offset"),
            num("upload-length"),
        )
    }

    /// PATCH a whole body; returns (status, new offset).
    pub async fn patch(
        &self,
        url: &str,
        offset: u64,
        data: Vec<u8>,
        length: Option<u64>,
    ) -> (u16, Option<u64>) {
        let mut req = self
            .http
            .patch(url)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset);
        if let Some(l) = length {
            req = req.header("upload-length", l);
        }
        let resp = req.body(data).send().await.unwrap();
        let off = resp
            .headers()
            .get("upload-offset")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (resp.status().as_u16(), off)
    }

    /// GET a completed upload's bytes, with the API credentials (an upload
    /// URL alone authorises the upload protocol, not reading).
    pub async fn get(&self, url: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(url)
            .header("authorization", basic_auth())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().to_vec()
    }
}

/// @tus/server (npm) with its file store, on a free port.
pub struct NodeTus {
    pub proc: Proc,
    pub base: String,
    pub dir: PathBuf,
}

pub fn node_tus(dir: &Path) -> NodeTus {
    std::fs::create_dir_all(dir).unwrap();
    let mut cmd = node("tus_node_server.mjs");
    cmd.args(["0", dir.to_str().unwrap()]);
    let mut proc = Proc::spawn(cmd);
    let line = proc.wait_line(Duration::from_secs(20), |l| {
        l.starts_with("listening on http://")
    });
    NodeTus {
        proc,
        base: line.trim_start_matches("listening on ").to_owned(),
        dir: dir.to_path_buf(),
    }
}

impl NodeTus {
    /// The creation endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}/files", self.base)
    }
    /// SHA-256 of what it stored for the upload at `url`.
    pub fn stored_sha(&self, url: &str) -> String {
        sha256_hex(&std::fs::read(self.dir.join(upload_id(url))).unwrap())
    }
}
