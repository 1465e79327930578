//! A private Garage — the S3-compatible object store the S3 suites run
//! against — for one test: a single node in its own temporary folder, on
//! free loopback ports, with one bucket and one access key, killed when
//! dropped. [`Garage::stop`] and [`Garage::start`] take the store away and
//! bring it back (same data, same ports) to test an outage. The binary is
//! the one `scripts/setup.sh garage` builds (`.spool/tools/bin/garage`, or
//! `SPOOL_GARAGE`); a test that needs it fails when it is missing, never
//! skips.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Garage {
    child: Option<Child>,
    dir: PathBuf,
    bin: PathBuf,
    s3_port: u16,
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub(crate) fn hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("random bytes");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Garage {
    /// The Garage binary; panics with what to run when it is missing.
    pub fn bin() -> PathBuf {
        if let Some(p) = std::env::var_os("SPOOL_GARAGE") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let p = root.join(".spool/tools/bin/garage");
        assert!(
            p.exists(),
            "Garage is not installed at {}: run `scripts/setup.sh garage` (make test does)",
            p.display()
        );
        p
    }

    /// A fresh node with bucket `spool` and one key, answering S3 requests.
    pub fn start_new() -> Garage {
        let dir = std::env::temp_dir().join(format!("spool-garage-{}", hex(8)));
        std::fs::create_dir_all(dir.join("meta")).expect("garage meta dir");
        std::fs::create_dir_all(dir.join("data")).expect("garage data dir");
        let (s3_port, rpc_port) = (free_port(), free_port());
        let config = format!(
            r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "lmdb"
replication_factor = 1
metadata_fsync = true
data_fsync = true
compression_level = "none"
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
api_bind_addr = "127.0.0.1:{s3_port}"
s3_region = "garage"
"#,
            dir = dir.display(),
            secret = hex(32),
        );
        std::fs::write(dir.join("garage.toml"), config).expect("garage.toml");
        let mut g = Garage {
            child: None,
            bin: Garage::bin(),
            s3_port,
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            region: "garage".into(),
            bucket: "spool".into(),
            access_key: format!("GK{}", hex(12)),
            secret_key: hex(32),
            dir,
        };
        g.start();
        g
    }

    /// Starts the node (again): its data is kept across [`Garage::stop`].
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "garage is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("garage.log"))
            .expect("garage log");
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.join("garage.toml"))
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_key)
            .env("GARAGE_DEFAULT_BUCKET", &self.bucket)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Kills the node (SIGKILL): the store is unreachable until
    /// [`Garage::start`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the S3 port answers an HTTP request (any status).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("garage exited ({status}): {}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.s3_port)) {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "HEAD /{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    self.bucket
                );
                let mut buf = [0u8; 12];
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && buf.starts_with(b"HTTP/1.1 ")
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "garage did not answer in 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the node logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("garage.log")).unwrap_or_default()
    }

    /// The environment of `spool serve --store s3` on this node.
    pub fn serve_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SPOOL_STORE", "s3".into()),
            ("SPOOL_S3_BUCKET", self.bucket.clone()),
            ("SPOOL_S3_ENDPOINT", self.endpoint.clone()),
            ("SPOOL_S3_REGION", self.region.clone()),
            ("SPOOL_S3_PATH_STYLE", "1".into()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
        ]
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
