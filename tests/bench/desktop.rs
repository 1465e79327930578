//! Desktop app benchmark (issue 5): the time from launch to a ready window,
//! and the app's own overhead while recording 1080p30 — CPU and RSS of the
//! app's process tree (its WebKit processes included, and its embedded
//! server) beyond those of the same pipeline run as `spool record` +
//! `spool serve` on the same virtual display for the same time.
//!
//! Uses the release builds: $SPOOL_DESKTOP_BIN (default
//! release/spool-desktop in the target folder, `make desktop`) and $SPOOL_BIN
//! (`make bench` sets it to release/spool there). Memory is PSS summed over each
//! process tree.
//! Environment: SPOOL_BENCH_LAUNCHES (default 5), SPOOL_BENCH_RECORD_SECS
//! (default 20).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spool_e2e::webdriver::{Driver, app_pids, kill_apps_using};
use spool_e2e::*;

fn release_desktop() -> PathBuf {
    std::env::var_os("SPOOL_DESKTOP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release/spool-desktop"))
}

const TICK_MS: u64 = 10;

/// (cpu time, memory bytes) of one process, if it runs. Memory is PSS
/// (shared pages split among the processes sharing them), so summing a
/// process tree does not count GTK/WebKit libraries once per process.
fn proc_usage(pid: u32) -> Option<(Duration, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let pss_kb: u64 = smaps
        .lines()
        .find(|l| l.starts_with("Pss:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((Duration::from_millis(ticks * TICK_MS), pss_kb * 1024))
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `roots` and all their descendants.
fn tree(roots: &[u32]) -> Vec<u32> {
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    let mut set: Vec<u32> = roots.to_vec();
    loop {
        let before = set.len();
        for &p in &all {
            if !set.contains(&p) && ppid(p).is_some_and(|pp| set.contains(&pp)) {
                set.push(p);
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

/// Sums CPU and RSS over `pids`.
fn usage(pids: &[u32]) -> (Duration, u64) {
    pids.iter()
        .filter_map(|&p| proc_usage(p))
        .fold((Duration::ZERO, 0), |(c, r), (c2, r2)| (c + c2, r + r2))
}

/// Samples the process tree of `roots` until `until` resolves: CPU used in
/// between and the peak summed RSS.
struct Sampler {
    roots: Vec<u32>,
    cpu0: Duration,
    peak: u64,
}

impl Sampler {
    fn start(roots: Vec<u32>) -> Sampler {
        let (cpu0, rss) = usage(&tree(&roots));
        Sampler {
            roots,
            cpu0,
            peak: rss,
        }
    }
    fn sample(&mut self) -> Duration {
        let (cpu, rss) = usage(&tree(&self.roots));
        self.peak = self.peak.max(rss);
        cpu.saturating_sub(self.cpu0)
    }
}

/// Paints the root window a new colour every 200 ms so frames differ.
fn animate(display: &str) -> Child {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "while true; do for c in '#1f77b4' '#ff7f0e' '#2ca02c' '#d62728' '#9467bd'; do xsetroot -display {display} -solid \"$c\"; sleep 0.2; done; done"
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn launch_to_ready(x: &Xvfb, launches: u64) {
    let mut times = Vec::new();
    for i in 0..launches {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("app");
        let t0 = Instant::now();
        let mut child = Command::new(release_desktop())
            .env("DISPLAY", &x.display)
            .env("SPOOL_DATA_DIR", &data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = t0 + Duration::from_secs(60);
        let ready = loop {
            let log = std::fs::read_dir(data.join("logs"))
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .and_then(|e| std::fs::read_to_string(e.path()).ok())
                .unwrap_or_default();
            if log.contains("window ready") {
                break t0.elapsed();
            }
            assert!(Instant::now() < deadline, "the window never became ready");
            std::thread::sleep(Duration::from_millis(5));
        };
        times.push(ready.as_secs_f64() * 1000.0);
        println!(
            "launch {i}: window ready after {:.0} ms",
            times[times.len() - 1]
        );
        let _ = child.kill();
        let _ = child.wait();
        kill_apps_using(&data);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "launch to ready window: p50 {:.0} ms, max {:.0} ms over {} launches (release build, Xvfb, first launch of a fresh data folder)",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
}

/// `spool serve` + `spool record` of the display for `secs`: (cpu, peak rss).
fn pipeline_alone(x: &Xvfb, dir: &Path, secs: u64) -> (Duration, u64) {
    let server = SpoolServer::start(&dir.join("server"), 0, &[]);
    let mut sampler = Sampler::start(vec![server.proc.child.id()]);
    let args = server_args(&server.base);
    let mut rec = Command::new(spool_bin());
    rec.arg("record")
        .args(&args)
        .args(["--source", &format!("x11:{}", x.display), "--fps", "30"])
        .args(["--duration", &secs.to_string()])
        .arg("--output")
        .arg(dir.join("out"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--json")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let before = children_cpu();
    let mut child = rec.spawn().unwrap();
    sampler.roots.push(child.id());
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success());
            break;
        }
        sampler.sample();
        std::thread::sleep(Duration::from_millis(100));
    }
    // The recorder has exited (and been waited for): its whole CPU time is
    // in the children's rusage; the server's is sampled.
    sampler.roots.retain(|&p| p != child.id());
    let recorder_cpu = children_cpu() - before;
    let server_cpu = sampler.sample();
    (server_cpu + recorder_cpu, sampler.peak)
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// CPU time of the children this process has waited for.
#[allow(unsafe_code)]
fn children_cpu() -> Duration {
    // SAFETY: rusage is plain old data (all-zero is valid) and getrusage
    // only writes into it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The app recording the display for `secs` (clicked through tauri-driver):
/// (cpu, peak rss) of its process tree from Record to the link, and idle.
async fn app_recording(x: &Xvfb, dir: &Path, secs: u64) -> ((Duration, u64), (Duration, u64)) {
    let data = dir.join("app");
    std::fs::create_dir_all(&data).unwrap();
    let env = [
        ("DISPLAY", x.display.as_str()),
        ("SPOOL_DATA_DIR", data.to_str().unwrap()),
        ("SPOOL_COUNTDOWN", "0"),
    ];
    let driver = Driver::start(&env, &dir.join("tauri-driver.log"));
    let s = driver.launch(&release_desktop()).await;
    s.wait_for("ready", Duration::from_secs(60), async |s| {
        (s.execute("return document.body.dataset.ready === 'true'")
            .await
            == true)
            .then_some(())
    })
    .await;
    let roots = app_pids(&data);
    assert_eq!(roots.len(), 1, "one app process");
    // Idle, for reference: 5 s with the window open.
    let mut idle = Sampler::start(roots.clone());
    std::thread::sleep(Duration::from_secs(5));
    let idle_cpu = idle.sample();

    let mut sampler = Sampler::start(roots);
    let record = s.testid("record-button").await;
    s.click(&record).await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        sampler.sample();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stop = s.testid("stop-button").await;
    let link = s.testid("share-link").await;
    let stopped = Instant::now();
    s.click(&stop).await;
    s.wait_for("the link", Duration::from_secs(60), async |s| {
        s.attr(&link, "href")
            .await
            .filter(|h| h.starts_with("http"))
    })
    .await;
    let shown = stopped.elapsed().as_millis();
    let logged = std::fs::read_dir(data.join("logs"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect::<String>();
    let in_app = logged
        .lines()
        .find(|l| l.contains("link ready after Stop"))
        .and_then(|l| l.split("ms=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    println!(
        "desktop app: Stop → link ready {in_app} ms (the app's own clock); Stop click sent → link shown in the window {shown} ms (WebDriver, polled every 100 ms)"
    );
    let cpu = sampler.sample();
    s.quit().await;
    drop(driver);
    kill_apps_using(&data);
    ((cpu, sampler.peak), (idle_cpu, idle.peak))
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() {
    let launches = env_u64("SPOOL_BENCH_LAUNCHES", 5);
    let secs = env_u64("SPOOL_BENCH_RECORD_SECS", 20);
    assert!(
        release_desktop().exists(),
        "{} is missing: run `make desktop`",
        release_desktop().display()
    );
    let x = Xvfb::start(1920, 1080);
    let mut painter = animate(&x.display);
    launch_to_ready(&x, launches);

    let dir = tempfile::tempdir().unwrap();
    let (p_cpu, p_rss) = pipeline_alone(&x, &dir.path().join("cli"), secs);
    let ((a_cpu, a_rss), (idle_cpu, idle_rss)) =
        app_recording(&x, &dir.path().join("desktop"), secs).await;
    let _ = painter.kill();
    let _ = painter.wait();
    let pct = |d: Duration| 100.0 * d.as_secs_f64() / secs as f64;
    println!(
        "pipeline alone (spool record + spool serve), 1080p30 for {secs} s: CPU {:.1} s ({:.0} % of a core), peak PSS {:.0} MiB",
        p_cpu.as_secs_f64(),
        pct(p_cpu),
        mib(p_rss)
    );
    println!(
        "desktop app (process tree incl. WebKit, embedded server), same recording: CPU {:.1} s ({:.0} % of a core), peak PSS {:.0} MiB",
        a_cpu.as_secs_f64(),
        pct(a_cpu),
        mib(a_rss)
    );
    println!(
        "app overhead while recording 1080p30: CPU {:+.1} s ({:+.0} % of a core), PSS {:+.0} MiB; idle window: CPU {:.0} % of a core over 5 s, PSS {:.0} MiB",
        a_cpu.as_secs_f64() - p_cpu.as_secs_f64(),
        pct(a_cpu) - pct(p_cpu),
        mib(a_rss) - mib(p_rss),
        100.0 * idle_cpu.as_secs_f64() / 5.0,
        mib(idle_rss)
    );
}
