//! The embedded upload server: spool-server in-process on 127.0.0.1, so a
//! new user records and gets a link with no account. It keeps the same port
//! from launch to launch (remembered in its data folder) because journaled
//! upload URLs and shared links name it; a taken port means a new one.
//! The port file is written only once a server holds the folder, so a
//! server that could not start (its data folder in use by another server,
//! say) never moves the links of the one that runs; its error is returned
//! whole for the app to log and show.
//!
//! Shared on the local network (a setting, off by default), it listens on
//! every interface and its share links name the machine's LAN address, while
//! upload URLs keep naming loopback — so turning sharing off never breaks an
//! upload in progress.

use std::net::SocketAddr;
use std::path::Path;

use spool_client::Target;
use tokio_util::sync::CancellationToken;

/// The running embedded server.
pub struct Embedded {
    pub url: String,
    /// The base of share links on the local network, when shared there.
    pub lan_url: Option<String>,
    token_id: String,
    token_secret: String,
    pub stop: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

/// This machine's address on its local network: the source address the
/// system would use towards the default route (a UDP "connect" sends
/// nothing), else towards the private ranges.
pub fn lan_address() -> Option<std::net::IpAddr> {
    ["8.8.8.8:53", "192.168.0.1:9", "10.0.0.1:9", "172.16.0.1:9"]
        .iter()
        .find_map(|probe| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
            s.connect(probe).ok()?;
            let ip = s.local_addr().ok()?.ip();
            (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
        })
}

impl Embedded {
    /// Starts the server on its remembered port; with `lan`, on every
    /// interface with share links on the LAN address (an error if the
    /// machine has none).
    pub async fn start(data_dir: &Path, lan: bool) -> anyhow::Result<Embedded> {
        let lan_ip = if lan {
            Some(lan_address().ok_or_else(|| {
                anyhow::anyhow!("this computer is not on a local network (no address to share on)")
            })?)
        } else {
            None
        };
        std::fs::create_dir_all(data_dir)?;
        let port_file = data_dir.join("port");
        let remembered = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok());
        let mut config = spool_server::Config::new(data_dir);
        let mut server = None;
        let mut last_error = None;
        let host = if lan_ip.is_some() {
            [0, 0, 0, 0]
        } else {
            [127, 0, 0, 1]
        };
        // A port the system has free now, when the remembered one is taken
        // (its URLs must be known before the server binds it).
        let free = std::net::TcpListener::bind(SocketAddr::from((host, 0)))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        for port in remembered.into_iter().chain([free]) {
            config.listen = SocketAddr::from((host, port));
            // Upload URLs name loopback; share links the LAN address.
            config.public_url = url::Url::parse(&format!("http://127.0.0.1:{port}")).ok();
            config.share_url = lan_ip.and_then(|ip| {
                url::Url::parse(&format!("http://{}", SocketAddr::new(ip, port))).ok()
            });
            match spool_server::Server::bind(config.clone()).await {
                Ok(s) => {
                    server = Some(s);
                    break;
                }
                // Only a taken port is worth another one: any other failure
                // (the data folder locked, unreadable, full) would fail on
                // every port, and is the one to report.
                Err(e) if e.is_addr_in_use() => {
                    tracing::warn!(port, error = %e, "the embedded server's port is taken");
                    last_error = Some(anyhow::Error::new(e));
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context("the embedded server did not start"));
                }
            }
        }
        let server = match (server, last_error) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e.context("the embedded server did not start")),
            (None, None) => anyhow::bail!("the embedded server did not start"),
        };
        std::fs::write(&port_file, server.addr.port().to_string())?;
        let url = server.app.public_url.clone();
        let lan_url =
            lan_ip.map(|ip| format!("http://{}", SocketAddr::new(ip, server.addr.port())));
        let creds = server.app.credentials.clone();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let done = tokio::spawn(async move {
            if let Err(e) = server.run(async move { token.cancelled().await }).await {
                tracing::error!(error = %e, "the embedded server stopped");
            }
        });
        tracing::info!(%url, lan = ?lan_url, "embedded server listening");
        Ok(Embedded {
            url,
            lan_url,
            token_id: creds.token_id,
            token_secret: creds.token_secret,
            stop,
            done,
        })
    }

    /// Stops the server and waits until it has let go of its data folder.
    pub async fn shut_down(self) {
        self.stop.cancel();
        let _ = self.done.await;
    }

    /// Where new uploads are created on it.
    pub fn target(&self) -> Target {
        Target::OnDemand {
            server: self.url.clone(),
            token_id: self.token_id.clone(),
            token_secret: self.token_secret.clone(),
        }
    }
}
