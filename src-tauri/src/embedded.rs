//! The embedded upload server: spool-server in-process on 127.0.0.1, so a
//! new user records and gets a link with no account. It keeps the same port
//! from launch to launch (remembered in its data folder) because journaled
//! upload URLs and shared links name it; a taken port means a new one.
//! The port file is written only once a server holds the folder, so a
//! server that could not start (its data folder in use by another server,
//! say) never moves the links of the one that runs; its error is returned
//! whole for the app to log and show.

use std::net::SocketAddr;
use std::path::Path;

use spool_client::Target;
use tokio_util::sync::CancellationToken;

/// The running embedded server.
pub struct Embedded {
    pub url: String,
    token_id: String,
    token_secret: String,
    pub stop: CancellationToken,
}

impl Embedded {
    pub async fn start(data_dir: &Path) -> anyhow::Result<Embedded> {
        std::fs::create_dir_all(data_dir)?;
        let port_file = data_dir.join("port");
        let remembered = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok());
        let mut config = spool_server::Config::new(data_dir);
        let mut server = None;
        let mut last_error = None;
        for port in remembered.into_iter().chain([0]) {
            config.listen = SocketAddr::from(([127, 0, 0, 1], port));
            match spool_server::Server::bind(config.clone()).await {
                Ok(s) => {
                    server = Some(s);
                    break;
                }
                Err(e) => {
                    tracing::warn!(port, error = %format!("{e:#}"), "the embedded server cannot start on this port");
                    last_error = Some(e);
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
        let creds = server.app.credentials.clone();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = server.run(async move { token.cancelled().await }).await {
                tracing::error!(error = %e, "the embedded server stopped");
            }
        });
        tracing::info!(%url, "embedded server listening");
        Ok(Embedded {
            url,
            token_id: creds.token_id,
            token_secret: creds.token_secret,
            stop,
        })
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
