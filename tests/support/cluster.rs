//! A Spool cluster for one test, as the README's deployment section builds
//! it: a private Garage and PostgreSQL, `n` `spool serve` nodes each on its
//! own data folder sharing them, and nginx balancing round robin in front,
//! with a byte-counting proxy before nginx (so a test knows every byte the
//! client sent; a benchmark may leave it out). Nodes can be killed (kill -9) and restarted on the same
//! port and folder; which node is writing an upload is read from the
//! database's lease table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spool_testkit::nginx::Nginx;

use crate::proxy::{FaultProxy, Faults};
use crate::{Backend, SpoolServer, free_port};

pub struct Cluster {
    pub backend: Backend,
    pub nginx: Nginx,
    /// What clients talk to: the proxy in front of nginx (idle when the
    /// cluster was started without it, [`Cluster::start_with`]).
    pub proxy: FaultProxy,
    pub nodes: Vec<Option<SpoolServer>>,
    ports: Vec<u16>,
    datas: Vec<PathBuf>,
    extra: Vec<String>,
    /// What clients talk to: the proxy's URL, or nginx's.
    url: String,
}

impl Cluster {
    /// `n` nodes under `dir` with `extra` arguments each.
    pub async fn start(dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        Self::start_with(dir, n, extra, true).await
    }

    /// [`Cluster::start`], the clients talking to nginx directly unless
    /// `proxy`: a benchmark's, since the proxy, counting every byte, would
    /// slow them. The proxy is started anyway (the field stays), unused.
    pub async fn start_with(dir: &Path, n: usize, extra: &[&str], proxy: bool) -> Cluster {
        let backend = Backend::s3_pg();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let upstreams: Vec<std::net::SocketAddr> = ports
            .iter()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let nginx = Nginx::start(&upstreams);
        let fault_proxy = FaultProxy::start_unconnected(Faults::default()).await;
        fault_proxy.set_upstream(
            nginx
                .url
                .trim_start_matches("http://")
                .parse()
                .expect("nginx address"),
        );
        let url = if proxy {
            fault_proxy.url()
        } else {
            nginx.url.clone()
        };
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        extra.extend(["--public-url".to_owned(), url.clone()]);
        let datas: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("node{i}"))).collect();
        let mut cluster = Cluster {
            backend,
            nginx,
            proxy: fault_proxy,
            nodes: (0..n).map(|_| None).collect(),
            ports,
            datas,
            extra,
            url,
        };
        // The first node migrates the schema; the others then start
        // together.
        cluster.restart(0);
        std::thread::scope(|s| {
            let started: Vec<_> = (1..n)
                .map(|i| {
                    let (backend, data, port, extra) = (
                        &cluster.backend,
                        &cluster.datas[i],
                        cluster.ports[i],
                        &cluster.extra,
                    );
                    s.spawn(move || {
                        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                        SpoolServer::start_on(backend, data, port, &extra)
                    })
                })
                .collect();
            for (i, node) in started.into_iter().enumerate() {
                cluster.nodes[i + 1] = Some(node.join().expect("starting a node"));
            }
        });
        cluster
    }

    /// The base URL clients use.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Starts node `i` (again), on its port and data folder.
    pub fn restart(&mut self, i: usize) {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.nodes[i] = Some(SpoolServer::start_on(
            &self.backend,
            &self.datas[i],
            self.ports[i],
            &extra,
        ));
    }

    /// kill -9 of node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.proc.kill9();
        }
    }

    /// Node `i`'s name in leases and claims (its data folder's node id).
    pub fn node_id(&self, i: usize) -> String {
        std::fs::read_to_string(self.datas[i].join("node-id"))
            .expect("node-id")
            .trim()
            .to_owned()
    }

    /// The node holding upload `id`'s writer lease now, if any.
    pub fn writer_of(&mut self, id: &str) -> Option<usize> {
        let pg = self.backend.postgres().expect("a cluster has PostgreSQL");
        let holder = pg.psql(&format!(
            "SELECT node FROM upload_leases WHERE upload_id = '{id}' AND expires_at > (extract(epoch from now()) * 1000)::bigint"
        ));
        let node = holder
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if node.is_empty() {
            return None;
        }
        (0..self.nodes.len()).find(|i| self.node_id(*i) == node)
    }

    /// Waits up to `timeout` for a node to hold upload `id`'s lease.
    pub fn wait_writer(&mut self, id: &str, timeout: Duration) -> Option<usize> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.writer_of(id) {
                return Some(i);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A SQL answer from the shared database.
    pub fn psql(&mut self, sql: &str) -> String {
        self.backend.postgres().expect("PostgreSQL").psql(sql)
    }

    /// Every node's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, data) in self.datas.iter().enumerate() {
            let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
            out.push_str(&format!("--- node {i} ---\n{log}\n"));
        }
        out.push_str(&format!("--- nginx ---\n{}\n", self.nginx.error_log()));
        out
    }
}
