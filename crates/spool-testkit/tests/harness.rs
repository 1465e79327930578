//! The PostgreSQL and nginx harnesses do what the scale-out suites rely
//! on: clusters start side by side and keep committed data across a clean
//! stop and a crash; nginx alternates between its upstreams and carries on
//! through the survivor when one goes away.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use spool_testkit::nginx::Nginx;
use spool_testkit::postgres::Postgres;

#[test]
fn postgres_clusters_start_side_by_side() {
    let t = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Postgres::start_new);
        let b = s.spawn(Postgres::start_new);
        (a.join().unwrap(), b.join().unwrap())
    });
    eprintln!("two clusters in parallel: {:?}", t.elapsed());
    assert_ne!(a.port, b.port);
    for pg in [&a, &b] {
        assert_eq!(pg.psql("SELECT 1"), "1");
        assert_eq!(
            pg.url,
            format!("postgres://postgres@127.0.0.1:{}/spool", pg.port)
        );
        assert_eq!(pg.psql("SELECT current_database()"), "spool");
        assert_eq!(pg.psql("SHOW fsync"), "on");
        assert_eq!(pg.psql("SHOW synchronous_commit"), "on");
        assert_eq!(pg.psql("SHOW max_connections"), "200");
    }
    // Separate clusters: a table in one is not in the other.
    a.psql("CREATE TABLE only_here (x int)");
    assert_eq!(
        b.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"),
        "0"
    );
}

#[test]
fn postgres_keeps_data_across_stop_and_start() {
    let mut pg = Postgres::start_new();
    pg.psql(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two')",
    );
    pg.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", pg.port)).is_err(),
        "a stopped server still accepts connections"
    );
    pg.start();
    assert_eq!(pg.psql("SELECT id, v FROM t ORDER BY id"), "1|one\n2|two");
}

#[test]
fn postgres_recovers_from_a_kill() {
    let mut pg = Postgres::start_new();
    pg.psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    // An idle session, so there is a backend to kill too.
    let session = TcpStream::connect(("127.0.0.1", pg.port)).unwrap();
    pg.kill();
    assert!(
        TcpStream::connect(("127.0.0.1", pg.port)).is_err(),
        "a killed server still accepts connections"
    );
    drop(session);
    pg.start();
    assert!(pg.log().contains("not properly shut down"), "{}", pg.log());
    pg.psql("INSERT INTO t VALUES (2)");
    assert_eq!(pg.psql("SELECT id FROM t ORDER BY id"), "1\n2");
    // And again, then a clean stop.
    pg.kill();
    pg.start();
    pg.stop();
    pg.start();
    assert_eq!(pg.psql("SELECT count(*) FROM t"), "2");
}

#[test]
fn postgres_start_new_timings() {
    for i in 0..3 {
        let t = Instant::now();
        let pg = Postgres::start_new();
        eprintln!("start_new #{i}: {:?}", t.elapsed());
        assert_eq!(pg.psql("SELECT 1"), "1");
    }
}

#[test]
fn nginx_balances_round_robin_and_survives_a_lost_upstream() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let lb = Nginx::start(&[a.addr, b.addr]);
    let names: Vec<String> = (0..6)
        .map(|_| {
            let (status, body) = request(&lb, "GET", &[]);
            assert_eq!(status, 200, "{body}\n{}", lb.error_log());
            // Host keeps nginx's port; the client's address is forwarded.
            assert!(
                body.contains(&format!("host=127.0.0.1:{} ", lb.port)),
                "{body}"
            );
            assert!(body.contains("xff=127.0.0.1 proto=http "), "{body}");
            body.split(' ').next().unwrap().to_owned()
        })
        .collect();
    assert!(
        names.windows(2).all(|w| w[0] != w[1]),
        "not round robin: {names:?}\n{}",
        lb.access_log()
    );
    // Keep-alive: each upstream served its three on one connection.
    assert_eq!((a.connections(), b.connections()), (1, 1));

    // Bodies of any size, streamed.
    let big = vec![b'x'; 3 << 20];
    let (status, body) = request(&lb, "POST", &big);
    assert_eq!(status, 200, "{body}\n{}", lb.error_log());
    assert!(body.ends_with(&format!("len={}", big.len())), "{body}");

    drop(b);
    for _ in 0..6 {
        let (status, body) = request(&lb, "GET", &[]);
        assert_eq!(
            status,
            200,
            "{body}\n{}\n{}",
            lb.error_log(),
            lb.access_log()
        );
        assert!(body.starts_with("a "), "{body}\n{}", lb.access_log());
    }
}

/// One request on its own connection; the status and the body.
fn request(lb: &Nginx, method: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", lb.port)).unwrap();
    write!(
        s,
        "{method} /x HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        lb.port,
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {resp:?}"));
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

/// A tiny HTTP/1.1 server (keep-alive, Content-Length bodies only) that
/// answers every request with its name and what it was told:
/// `NAME host=… xff=… proto=… len=…`. Dropping it closes its listener and
/// every connection, as a crashed server would.
struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, conns) = (stop.clone(), conns.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    conns.lock().unwrap().push(conn.try_clone().unwrap());
                    std::thread::spawn(move || serve(conn, name));
                }
            })
        };
        Backend {
            addr,
            stop,
            conns,
            accept: Some(accept),
        }
    }
}

impl Backend {
    /// How many connections it has accepted.
    fn connections(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then drops the listener.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn serve(conn: TcpStream, name: &str) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let (mut host, mut xff, mut proto, mut len) =
            (String::new(), String::new(), String::new(), 0);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((k, v)) = h.split_once(':') else {
                continue;
            };
            let v = v.trim().to_owned();
            match k.to_ascii_lowercase().as_str() {
                "host" => host = v,
                "x-forwarded-for" => xff = v,
                "x-forwarded-proto" => proto = v,
                "content-length" => len = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        if std::io::copy(&mut (&mut r).take(len), &mut std::io::sink()).ok() != Some(len) {
            return;
        }
        let body = format!("{name} host={host} xff={xff} proto={proto} len={len}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
