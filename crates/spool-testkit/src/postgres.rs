//! A private PostgreSQL 15 cluster for one test: Debian's binaries
//! (`/usr/lib/postgresql/15/bin`, or the folder `SPOOL_PG_BIN` names), on a
//! free loopback port, with database `spool`, trust authentication and the
//! durability settings Spool claims (`fsync`, `synchronous_commit`), stopped
//! and deleted when dropped. Many tests each start one, so `initdb` runs
//! once per process into a template cluster that every [`Postgres::start_new`]
//! copies. Everything lives under `$TMPDIR/spool-pg-<pid>/`; a watcher
//! process removes that folder (and stops any cluster a test left running)
//! when this process ends, however it ends. PostgreSQL refuses to run as
//! root, so as root its programs run as the `postgres` user. [`Postgres::stop`],
//! [`Postgres::start`] and [`Postgres::kill`] take the server away and bring
//! it back (same data, same port) to test an outage or a crash.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::garage::{free_port, hex};

pub struct Postgres {
    /// This cluster's folder: `data/`, its Unix socket and `postgres.log`.
    dir: PathBuf,
    running: bool,
    /// The postmaster [`Postgres::kill`] killed, until the cluster is
    /// started again.
    killed: Option<u32>,
    pub port: u16,
    pub url: String,
}

/// What every cluster of this process shares.
struct Shared {
    bin: PathBuf,
    /// The `postgres` user's uid and gid when this process is root (the
    /// folders are handed to it and its programs run as it), else `None`.
    owner: Option<(u32, u32)>,
    /// `$TMPDIR/spool-pg-<pid>`, holding `template/` and one folder a cluster.
    root: PathBuf,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

/// The cleanup watcher's stdin (see [`Shared::start_watcher`]), open for
/// the life of the process: statics are never dropped, so the watcher reads
/// end-of-file only once this process has exited. Apart from [`SHARED`] so
/// that it is in place before the template is made (a run killed during
/// initdb leaves nothing either) and a panic making it does not close it.
static WATCHER: OnceLock<ChildStdin> = OnceLock::new();

/// Settings of every cluster, appended to the template's postgresql.conf.
const CONF: &str = "
# spool-testkit
listen_addresses = '127.0.0.1'
# Spool claims an acknowledged upload survives a crash: test with the
# settings that make that true.
fsync = on
synchronous_commit = on
full_page_writes = on
# After a crash the server syncs its data directory before recovery: file
# by file that is about a thousand fsyncs (seconds), syncfs is one call. It
# only matters if the machine itself went down, which no test does.
recovery_init_sync_method = syncfs
# Small, since a test run may start dozens at once.
shared_buffers = 32MB
max_connections = 200
";

impl Postgres {
    /// A fresh cluster, accepting connections on `url`, with an empty
    /// database `spool`.
    pub fn start_new() -> Postgres {
        let shared = shared();
        let dir = shared.root.join(format!("pg-{}", hex(8)));
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // From here on, dropping `pg` (say on a panic) removes the folder.
        let mut pg = Postgres {
            dir,
            running: false,
            killed: None,
            port: 0,
            url: String::new(),
        };
        shared.hand_over(&pg.dir);
        run(
            Command::new("cp")
                .arg("-a")
                .arg(shared.root.join("template/data"))
                .arg(pg.data()),
            "copying the template cluster",
        );
        // The port is free when picked but another process may take it
        // before the server binds it; then pick another.
        for attempt in 1.. {
            pg.port = free_port();
            pg.url = format!("postgres://postgres@127.0.0.1:{}/spool", pg.port);
            // Later lines win, so a retry just appends again.
            append(
                &pg.data().join("postgresql.conf"),
                &format!(
                    "port = {}\nunix_socket_directories = '{}'\n",
                    pg.port,
                    pg.dir.display()
                ),
            );
            match pg.try_start() {
                Ok(()) => break,
                Err(e) if attempt < 5 && e.contains("Address already in use") => continue,
                Err(e) => panic!("PostgreSQL did not start: {e}"),
            }
        }
        pg
    }

    /// Starts the server again after [`Postgres::stop`] or
    /// [`Postgres::kill`]: same data, same port; returns once it accepts
    /// connections (after crash recovery, if it was killed).
    pub fn start(&mut self) {
        assert!(!self.running, "PostgreSQL is already running");
        if let Err(e) = self.try_start() {
            panic!("PostgreSQL did not start again: {e}");
        }
    }

    /// Shuts the server down cleanly (`pg_ctl stop -m fast`: sessions are
    /// disconnected, the last checkpoint is written) and waits until it has.
    pub fn stop(&mut self) {
        assert!(self.running, "PostgreSQL is not running");
        let out = self
            .pg_ctl()
            .args(["stop", "-w", "-t", "60", "-s", "-m", "fast"])
            .output()
            .expect("running pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        self.running = false;
    }

    /// Crashes the server: SIGKILL to the postmaster and to every process
    /// it started, so nothing gets to flush or clean up; a later
    /// [`Postgres::start`] runs crash recovery. (The operating system's page
    /// cache survives, so this tests what a process crash keeps, not a
    /// power cut.)
    pub fn kill(&mut self) {
        assert!(self.running, "PostgreSQL is not running");
        let pid_file = self.data().join("postmaster.pid");
        let postmaster: u32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no postmaster pid in {}", pid_file.display()));
        // Backends put themselves in their own sessions, so there is no
        // process group to kill; they are found as the postmaster's
        // children instead, with it stopped so it cannot start another
        // meanwhile. They would exit by themselves once the postmaster is
        // gone, but until the last one has, a new postmaster refuses to
        // start (the old shared memory is still attached).
        signal("STOP", &[postmaster]);
        let mut pids = children(postmaster);
        pids.push(postmaster);
        signal("KILL", &pids);
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|&p| alive(p)) {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL processes {pids:?} outlived SIGKILL by 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.running = false;
        self.killed = Some(postmaster);
    }

    /// Runs `sql` (one or more statements, stopping at the first error)
    /// with psql in database `spool`; its output (`-At`: unaligned rows,
    /// `|` between columns, no headers or command tags), trimmed. Panics
    /// with psql's error when a statement fails.
    pub fn psql(&self, sql: &str) -> String {
        let mut child = Command::new(shared().bin.join("psql"))
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg("-d")
            .arg(&self.url)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running psql");
        // psql reads all of stdin before it exits; a write error shows up
        // as its failure below.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(sql.as_bytes());
        }
        let out = child.wait_with_output().expect("psql output");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// pg_ctl for this cluster, as the user that owns it.
    fn pg_ctl(&self) -> Command {
        let mut c = shared().command("pg_ctl");
        c.arg("-D").arg(self.data()).current_dir(&self.dir);
        c
    }

    /// `pg_ctl -w start`, which returns once the server accepts
    /// connections; what went wrong otherwise.
    fn try_start(&mut self) -> Result<(), String> {
        if let Some(postmaster) = self.killed {
            self.forget(postmaster);
        }
        let out = self
            .pg_ctl()
            .args(["start", "-w", "-t", "60", "-s", "-l"])
            .arg(self.dir.join("postgres.log"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running pg_ctl: {e}"))?;
        if out.status.success() {
            self.running = true;
            self.killed = None;
            return Ok(());
        }
        // pg_ctl may have given up while the server goes on starting.
        let _ = self
            .pg_ctl()
            .args(["stop", "-w", "-s", "-m", "immediate"])
            .output();
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        ))
    }

    /// Waits for the killed `postmaster` to be reaped. Until then it is a
    /// zombie, which PostgreSQL takes for a running server (its pid is in
    /// the lock files) and refuses to start. Init reaps orphans at once on
    /// most machines, every two seconds or so in some containers; if it
    /// never does, the lock files go, which costs the old server's shared
    /// memory segments: only a server that finds the lock file removes
    /// them.
    fn forget(&self, postmaster: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{postmaster}")).exists() {
            if Instant::now() >= deadline {
                let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
                let _ = std::fs::remove_file(self.dir.join(format!(".s.PGSQL.{}.lock", self.port)));
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A killed server's shared memory (segments in /dev/shm) outlives
        // it until a server starts on its data and removes them.
        if self.killed.is_some() {
            let _ = self.try_start();
        }
        // Immediate: nothing of this cluster is needed any more.
        if self.running {
            let _ = self
                .pg_ctl()
                .args(["stop", "-w", "-t", "30", "-s", "-m", "immediate"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shared() -> &'static Shared {
    SHARED.get_or_init(Shared::init)
}

impl Shared {
    /// Starts the watcher and makes the template cluster (`initdb`, then
    /// database `spool` in single-user mode, so no cluster pays for CREATE
    /// DATABASE).
    fn init() -> Shared {
        let bin = std::env::var_os("SPOOL_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        assert!(
            bin.join("initdb").exists(),
            "PostgreSQL 15 is not installed in {}: install postgresql-15 (scripts/setup.sh system does) or set SPOOL_PG_BIN",
            bin.display()
        );
        let root = std::env::temp_dir().join(format!("spool-pg-{}", std::process::id()));
        // A leftover of an earlier process that had this pid, or of an
        // earlier attempt of this one that panicked.
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)
            .unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        // Whatever the umask: the postgres user must get through it.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", root.display()));
        let shared = Shared {
            bin,
            owner: (effective_uid() == 0).then(postgres_user),
            root,
        };
        WATCHER.get_or_init(|| shared.start_watcher());
        let template = shared.root.join("template");
        std::fs::create_dir(&template)
            .unwrap_or_else(|e| panic!("creating {}: {e}", template.display()));
        shared.hand_over(&template);
        run(
            shared
                .command("initdb")
                .arg("-D")
                .arg(template.join("data"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    // The template is copied, never used: no need to fsync.
                    "--no-sync",
                    "--no-instructions",
                ])
                .current_dir(&template),
            "initdb",
        );
        append(&template.join("data/postgresql.conf"), CONF);
        let mut single = shared
            .command("postgres")
            .arg("--single")
            .arg("-D")
            .arg(template.join("data"))
            .arg("postgres")
            .current_dir(&template)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running postgres --single");
        if let Some(mut stdin) = single.stdin.take() {
            let _ = stdin.write_all(b"CREATE DATABASE spool;\n");
        }
        let out = single.wait_with_output().expect("postgres --single");
        // Single-user mode exits 0 even when a statement failed.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.contains("ERROR"),
            "creating database spool in the template: {err}"
        );
        shared
    }

    /// `tool` from the PostgreSQL folder, as `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Gives `dir` to the postgres user when we are root.
    fn hand_over(&self, dir: &Path) {
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
        }
    }

    /// A shell that waits for end-of-file on its stdin, which comes when
    /// this process exits (by any means, even SIGKILL: the kernel closes
    /// the pipe), then stops every cluster still running under the root
    /// folder and removes it. Without it the template would stay behind
    /// (statics are never dropped), and so would the clusters of a run cut
    /// short (a postmaster leaves our session, so Ctrl-C does not reach
    /// it). Its own process group keeps Ctrl-C off the watcher too.
    fn start_watcher(&self) -> ChildStdin {
        use std::os::unix::process::CommandExt;
        let script = r#"
trap '' HUP INT QUIT TERM PIPE
cat >/dev/null
# What this process started may still be at work (initdb, cp, pg_ctl start)
# and write behind rm: go over it until it stays gone.
n=0
while [ -e "$0" ] && [ $n -lt 50 ]; do
  for d in "$0"/*/data; do
    [ -f "$d/postmaster.pid" ] || continue
    if [ "$2" = root ]; then
      runuser -u postgres -- "$1" stop -s -m immediate -D "$d"
    else
      "$1" stop -s -m immediate -D "$d"
    fi
  done
  rm -rf "$0" 2>/dev/null
  n=$((n + 1))
  sleep 0.2
done
"#;
        #[allow(
            clippy::zombie_processes,
            reason = "it outlives this process by design; init reaps it"
        )]
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&self.root)
            .arg(self.bin.join("pg_ctl"))
            .arg(if self.owner.is_some() { "root" } else { "user" })
            // Not the root folder: it may be gone and made again by then,
            // and pg_ctl needs a working directory it can look up.
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the cleanup watcher (sh)");
        child.stdin.take().expect("the watcher's stdin")
    }
}

/// Runs `cmd`; panics with its stderr when it fails.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("appending to {}: {e}", path.display()));
}

/// This process's effective uid (what PostgreSQL checks), from
/// /proc/self/status: `Uid: real effective saved fs`.
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("a Uid line in /proc/self/status")
}

/// The postgres user's uid and gid.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("running id");
        assert!(
            out.status.success(),
            "PostgreSQL refuses to run as root and there is no postgres user: install postgresql-15 (scripts/setup.sh system does)"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

fn signal(sig: &str, pids: &[u32]) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// The pids whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// Whether `pid` still runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// The state and parent pid of `pid`, from /proc/PID/stat:
/// `pid (comm) state ppid …`, where comm may hold spaces and parentheses.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = s.get(s.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}
