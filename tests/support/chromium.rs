//! Headless Chromium for the share page's suite: chromedriver (Debian's
//! `chromium-driver`, installed by `scripts/setup.sh`) on a free port,
//! sessions with a desktop window or an emulated phone, spoken to with the
//! same small WebDriver client as the desktop suite ([`Session`]), plus what
//! pages need: navigation, scripts (sync and async), waiting on a JS
//! condition against a deadline, keys, and screenshots kept for people to
//! look at.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::webdriver::Session;
use crate::{free_port, root};

/// Where screenshots go: `$SPOOL_SCREENSHOTS`, else `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("SPOOL_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"))
                .join("screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running chromedriver; killed on drop (it ends its browsers with it).
pub struct ChromeDriver {
    child: Child,
    pub port: u16,
}

impl Drop for ChromeDriver {
    /// Kills chromedriver's process group: it and every browser it started,
    /// including those of a test that panicked before closing its session.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The window a session gets.
#[derive(Clone, Copy, Debug)]
pub enum Viewport {
    /// A desktop window of this many CSS pixels.
    Desktop(u32, u32),
    /// A phone (touch, device pixel ratio 3) of this many CSS pixels.
    Phone(u32, u32),
}

impl ChromeDriver {
    /// Starts `/usr/bin/chromedriver` (or `$CHROMEDRIVER`) and waits until
    /// it answers `/status`.
    pub async fn start() -> ChromeDriver {
        let port = free_port();
        let bin = std::env::var_os("CHROMEDRIVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/usr/bin/chromedriver".into());
        // Its own process group, which the browsers it starts join, so
        // that dropping the driver ends them all.
        let child = Command::new(&bin)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} (scripts/setup.sh system installs chromium-driver): {e}",
                    bin.display()
                )
            });
        let driver = ChromeDriver { child, port };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new headless browser with `viewport`.
    pub async fn browser(&self, viewport: Viewport) -> Browser {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            "--mute-audio".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--no-first-run".to_owned(),
        ];
        let mut options = json!({});
        match viewport {
            Viewport::Desktop(w, h) => args.push(format!("--window-size={w},{h}")),
            Viewport::Phone(w, h) => {
                options["mobileEmulation"] = json!({"deviceMetrics": {
                    "width": w, "height": h, "pixelRatio": 3.0, "mobile": true, "touch": true
                }});
            }
        }
        options["args"] = json!(args);
        options["binary"] =
            json!(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()));
        let base = format!("http://127.0.0.1:{}", self.port);
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no Chromium session: {resp}"))
            .to_owned();
        let session = Session::attach(http, format!("{base}/session/{id}"));
        session
            .cmd(
                reqwest::Method::POST,
                "/timeouts",
                Some(json!({"script": 60_000, "pageLoad": 60_000})),
            )
            .await;
        let b = Browser { session };
        if let Viewport::Desktop(w, h) = viewport {
            // --window-size sizes the window; make the viewport exact.
            let inner = b.execute("return [innerWidth, innerHeight]").await;
            let (iw, ih) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
            if (iw, ih) != (u64::from(w), u64::from(h)) {
                let rect = b.cmd(reqwest::Method::GET, "/window/rect", None).await;
                let ow = rect["width"].as_u64().unwrap() + u64::from(w) - iw;
                let oh = rect["height"].as_u64().unwrap() + u64::from(h) - ih;
                b.cmd(
                    reqwest::Method::POST,
                    "/window/rect",
                    Some(json!({"width": ow, "height": oh})),
                )
                .await;
            }
        }
        b
    }
}

/// A browser session; derefs to [`Session`] for elements and the rest.
pub struct Browser {
    session: Session,
}

impl std::ops::Deref for Browser {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Browser {
    /// Navigates to `url` and waits for the load event.
    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs `script` (a function body) with `args`; its return value.
    pub async fn execute_with(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script` (a function body) asynchronously: it finishes by
    /// calling `done(value)`, which is `arguments[arguments.length - 1]`.
    pub async fn execute_async(&self, script: &str) -> Value {
        let body = format!("const done = arguments[arguments.length - 1];\n{script}");
        self.cmd(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": body, "args": []})),
        )
        .await
    }

    /// Waits until the JS expression `cond` is truthy, checked in the page
    /// every animation frame, at most until `timeout`; returns its value.
    /// Panics with `what`, the last value of `probe` and a screenshot.
    pub async fn wait_js(&self, what: &str, cond: &str, timeout: Duration, probe: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // One wait in the page per round, bounded below the script
            // timeout; a navigation in between just starts another round.
            let ms = left.as_millis().min(20_000) as u64;
            let script = format!(
                "const end = performance.now() + {ms};
                 const tick = () => {{
                   let v; try {{ v = ({cond}); }} catch (e) {{ v = null; }}
                   if (v) return done({{ok: true, v}});
                   if (performance.now() > end) return done({{ok: false}});
                   requestAnimationFrame(tick);
                 }};
                 // rAF does not run in a hidden page: fall back to timers.
                 document.hidden ? setTimeout(tick, 16) : tick();"
            );
            let r = self.execute_async(&script).await;
            if r["ok"] == true {
                return r["v"].clone();
            }
            if Instant::now() >= deadline {
                let seen = self.execute(&format!("return {probe}")).await;
                let shot = self.screenshot_as(&format!("timeout-{}", slug(what))).await;
                panic!(
                    "timed out after {timeout:?} waiting for {what}; {probe} = {seen}; screenshot {}",
                    shot.display()
                );
            }
        }
    }

    /// Presses and releases `key` (a character, or a WebDriver key code
    /// such as `"\u{E012}"` for ←) at whatever has the focus.
    pub async fn press(&self, key: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
                ]}]}),
            ),
        )
        .await;
        self.cmd(reqwest::Method::DELETE, "/actions", None).await;
    }

    /// Saves a PNG of the viewport as `<screenshot_dir>/<name>.png`.
    pub async fn screenshot_as(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the session (the browser exits).
    pub async fn close(self) {
        self.session.quit().await;
    }
}

/// Plays the video and waits for its clock to pass `secs`.
pub async fn wait_playing_past(b: &Browser, secs: f64, what: &str) {
    b.wait_js(
        what,
        &format!("(() => {{ const v = document.querySelector('video'); if (v.paused) v.play().catch(() => {{}}); return v.currentTime > {secs}; }})()"),
        Duration::from_secs(20),
        PROBE,
    )
    .await;
}

/// Plays the video and waits for its clock to advance `by` seconds from
/// where it settles (a live player starts near the live edge, not at 0).
pub async fn wait_advancing(b: &Browser, by: f64, what: &str) {
    b.execute("window.__t0 = undefined; return true").await;
    b.wait_js(
        what,
        &format!("(() => {{ const v = document.querySelector('video'); if (v.paused) v.play().catch(() => {{}});
            if (window.__t0 === undefined && v.readyState >= 3 && !v.seeking) window.__t0 = v.currentTime;
            return window.__t0 !== undefined && v.currentTime > window.__t0 + {by}; }})()"),
        Duration::from_secs(20),
        PROBE,
    )
    .await;
}

/// What a failed wait on the video shows about it.
pub const PROBE: &str = "(() => { const v = document.querySelector('video'); return v && {t: v.currentTime, d: v.duration, rs: v.readyState, paused: v.paused, err: v.error && v.error.message, t0: window.__t0}; })()";

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}
