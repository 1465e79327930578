//! A private nginx — the load balancer the scale-out suites put in front of
//! several Spool servers — for one test: Debian's nginx (`/usr/sbin/nginx`
//! from nginx-light, or `SPOOL_NGINX`) balancing round robin over the given
//! upstreams, on a free loopback port, with its configuration, logs, pid
//! file and temporary files in its own temporary folder (it never touches
//! /etc/nginx or /var/lib/nginx), killed and deleted when dropped. It
//! streams both ways (no request or response buffering, no body size
//! limit) and retries another upstream only for what is safe to retry:
//! nginx's default, a connection error or timeout before a non-idempotent
//! request was sent.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::garage::{free_port, hex};

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub port: u16,
    pub url: String,
}

impl Nginx {
    /// The nginx binary; panics with what to install when it is missing.
    pub fn bin() -> PathBuf {
        let p = std::env::var_os("SPOOL_NGINX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
        assert!(
            p.exists(),
            "nginx is not installed at {}: install nginx-light (scripts/setup.sh system does) or set SPOOL_NGINX",
            p.display()
        );
        p
    }

    /// nginx balancing over `upstreams`, accepting connections on `url`.
    pub fn start(upstreams: &[SocketAddr]) -> Nginx {
        assert!(!upstreams.is_empty(), "nginx needs at least one upstream");
        let bin = Nginx::bin();
        let dir = std::env::temp_dir().join(format!("spool-nginx-{}", hex(8)));
        std::fs::create_dir_all(dir.join("tmp"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // The port is free when picked but another process may take it
        // before nginx binds it; then pick another.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            std::fs::write(dir.join("nginx.conf"), config(&dir, port, upstreams))
                .unwrap_or_else(|e| panic!("writing {}/nginx.conf: {e}", dir.display()));
            let mut child = Command::new(&bin)
                .arg("-p")
                .arg(format!("{}/", dir.display()))
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                // Where it logs before it has read the configuration.
                .arg("-e")
                .arg(dir.join("error.log"))
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            match wait_ready(&mut child, port, &dir) {
                Ok(()) => {
                    return Nginx {
                        child,
                        dir,
                        port,
                        url: format!("http://127.0.0.1:{port}"),
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if attempt < 5 && e.contains("Address already in use") {
                        continue;
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("nginx did not start: {e}");
                }
            }
        }
    }

    /// What nginx logged: errors, and warnings such as an upstream that
    /// failed and was skipped.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// One line a request: `METHOD URI STATUS upstream=ADDRS
    /// upstream_status=STATUSES` (several, comma-separated, when nginx
    /// tried more than one upstream).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until nginx accepts connections on `port`; its error log if it
/// exits first or takes over 10 s.
fn wait_ready(child: &mut Child, port: u16, dir: &Path) -> Result<(), String> {
    let log = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("nginx exited ({status}): {}", log()));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nginx did not listen in 10 s: {}", log()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The configuration: every path absolute and inside `dir`.
fn config(dir: &Path, port: u16, upstreams: &[SocketAddr]) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|a| format!("        server {a} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        r#"# One process, no workers: the round robin's turn and the upstreams'
# failure counts live in one place (a test can predict the order), it runs
# as whoever starts it (root included: no worker switches user), and
# SIGKILL takes all of it (a worker would outlive its killed master).
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    log_format upstreams '$request_method $request_uri $status upstream=$upstream_addr upstream_status=$upstream_status';
    access_log {d}/access.log upstreams;

    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;

    upstream spool {{
{servers}        keepalive 16;
        # Closed before the servers drop idle connections (hyper's header
        # read timeout is 30 s), so nginx does not send a request down a
        # connection that is being closed; a POST or PATCH lost that way
        # could not be retried.
        keepalive_timeout 10s;
    }}

    server {{
        listen 127.0.0.1:{port};
        # Uploads are any size: Spool enforces its own limits.
        client_max_body_size 0;

        location / {{
            proxy_pass http://spool;
            # Keep-alive to the upstreams needs HTTP/1.1 and no
            # "Connection: close".
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # $http_host keeps the port, for the absolute URLs Spool builds.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Stream uploads and downloads as they come.
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 60s;
            # Loopback connects at once or not at all: find out soon.
            proxy_connect_timeout 5s;
            # nginx's default, spelled out: another upstream only after an
            # error or timeout, and never once a non-idempotent request
            # (POST, PATCH) has been sent.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#
    )
}
