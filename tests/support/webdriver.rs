//! Driving the desktop app the way QA does: tauri-driver (which starts
//! WebKitWebDriver, which starts the app) spoken to over the W3C WebDriver
//! protocol with reqwest. The app's environment (DISPLAY, SPOOL_DATA_DIR,
//! SPOOL_SERVER_URL, …) is tauri-driver's, which WebKitWebDriver and the app
//! inherit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{free_port, root, target_dir};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The spool-desktop binary under test: `$SPOOL_DESKTOP_BIN`, else the debug build.
pub fn desktop_bin() -> PathBuf {
    let bin = std::env::var_os("SPOOL_DESKTOP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/spool-desktop"));
    assert!(
        bin.exists(),
        "{} is missing: run `make build` (or `make desktop` with SPOOL_DESKTOP_BIN)",
        bin.display()
    );
    bin
}

/// Pids of running spool-desktop processes whose environment names
/// `SPOOL_DATA_DIR=data`.
pub fn app_pids(data: &Path) -> Vec<u32> {
    let needle = format!("SPOOL_DATA_DIR={}", data.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("spool-desktop") {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Terminates every spool-desktop of `data` (SIGTERM) and waits for them.
pub fn kill_apps_using(data: &Path) {
    for _ in 0..100 {
        let pids = app_pids(data);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("spool-desktop did not exit");
}

/// The ids of the top-level X windows of `display` named exactly `name`
/// (xdotool; without a window manager the app's window is one of them).
pub fn x_windows_named(display: &str, name: &str) -> Vec<String> {
    let out = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", &format!("^{name}$")])
        .env("DISPLAY", display)
        .output()
        .expect("xdotool (scripts/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The X window that has the input focus on `display` (xdotool's id).
pub fn x_focused_window(display: &str) -> Option<String> {
    let out = Command::new("xdotool")
        .arg("getwindowfocus")
        .env("DISPLAY", display)
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !id.is_empty()).then_some(id)
}

/// tauri-driver, as installed by `scripts/setup.sh driver`.
pub fn tauri_driver_bin() -> PathBuf {
    std::env::var_os("TAURI_DRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".spool/tools/bin/tauri-driver"))
}

/// A running tauri-driver; stopped with SIGTERM so it stops WebKitWebDriver too.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts tauri-driver with `env` for the app; `log` gets its output.
    pub fn start(env: &[(&str, &str)], log: &Path) -> Driver {
        let port = free_port();
        let native = free_port();
        let mut cmd = Command::new(tauri_driver_bin());
        cmd.args(["--port", &port.to_string()])
            .args(["--native-port", &native.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        if let Ok(f) = std::fs::File::create(log) {
            if let Ok(f2) = f.try_clone() {
                cmd.stdout(f2);
            }
            cmd.stderr(f);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting tauri-driver (scripts/setup.sh driver): {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }

    /// Launches the app and opens a session on its window.
    pub async fn launch(&self, app: &Path) -> Session {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{}", self.port);
        // tauri-driver listens before its WebKitWebDriver does: a session
        // asked for too early fails, so ask again (bounded).
        let mut resp = Value::Null;
        for attempt in 0..10 {
            let r = http
                .post(format!("{base}/session"))
                .json(&json!({"capabilities": {"alwaysMatch": {
                    "tauri:options": {"application": app.to_str().unwrap()}
                }}}))
                .send()
                .await;
            match r {
                Ok(r) => {
                    resp = r.json().await.unwrap_or_default();
                    if resp["value"]["sessionId"].is_string() {
                        break;
                    }
                }
                Err(e) => resp = json!({"error": e.to_string()}),
            }
            eprintln!("WebDriver session attempt {attempt} failed: {resp}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let id = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {resp}"))
            .to_owned();
        Session {
            http,
            url: format!("{base}/session/{id}"),
        }
    }
}

/// A WebDriver session on the app's window.
pub struct Session {
    http: reqwest::Client,
    url: String,
}

/// An element of the window.
#[derive(Clone)]
pub struct Element(String);

impl Session {
    /// A session another driver opened (chromedriver: see [`crate::chromium`]):
    /// `url` is `http://127.0.0.1:PORT/session/ID`.
    pub(crate) fn attach(http: reqwest::Client, url: String) -> Session {
        Session { http, url }
    }

    /// Any WebDriver command on this session (`path` after `/session/ID`);
    /// its `value`. Panics (with a screenshot) on a WebDriver error.
    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = v["value"].get("error") {
            let shot = self.screenshot().await;
            panic!(
                "WebDriver {path}: {err} {} (the window: {shot})",
                v["value"]["message"]
            );
        }
        v["value"].clone()
    }

    /// Saves a screenshot of the window into the system temp folder; its path.
    pub async fn screenshot(&self) -> String {
        use base64::Engine as _;
        let Ok(resp) = self
            .http
            .get(format!("{}/screenshot", self.url))
            .send()
            .await
        else {
            return "no screenshot".into();
        };
        let v: Value = resp.json().await.unwrap_or_default();
        let Some(png) = v["value"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        else {
            return "no screenshot".into();
        };
        let path = std::env::temp_dir().join(format!(
            "spool-desktop-{}.png",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ));
        match std::fs::write(&path, png) {
            Ok(()) => path.display().to_string(),
            Err(_) => "no screenshot".into(),
        }
    }

    /// The element, or why there is none: the WebDriver's answer (no such
    /// element) or that the driver did not answer at all (the app gone).
    async fn try_find(&self, css: &str) -> Result<Element, String> {
        let resp = self
            .http
            .post(format!("{}/element", self.url))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .map_err(|e| format!("the WebDriver did not answer: {e}"))?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| format!("the WebDriver's answer is not JSON: {e}"))?;
        v["value"][ELEMENT_KEY]
            .as_str()
            .map(|s| Element(s.to_owned()))
            .ok_or_else(|| format!("the WebDriver answered {}", v["value"]))
    }

    /// The element `[data-testid=…]`, waiting up to 30 s for it to exist.
    pub async fn testid(&self, id: &str) -> Element {
        self.find(&format!("[data-testid=\"{id}\"]")).await
    }

    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let why = match self.try_find(css).await {
                Ok(e) => return e,
                Err(why) => why,
            };
            assert!(Instant::now() < deadline, "no element {css}: {why}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// GET `/element/{id}/{what}`.
    async fn element_get(&self, e: &Element, what: &str) -> Value {
        self.cmd(
            reqwest::Method::GET,
            &format!("/element/{}/{what}", e.0),
            None,
        )
        .await
    }

    /// POST `/element/{id}/{what}`.
    async fn element_post(&self, e: &Element, what: &str, body: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{}/{what}", e.0),
            Some(body),
        )
        .await
    }

    pub async fn click(&self, e: &Element) {
        self.element_post(e, "click", json!({})).await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.element_get(e, "text")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn attr(&self, e: &Element, name: &str) -> Option<String> {
        self.element_get(e, &format!("attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// A DOM property (e.g. a select's current `value`).
    pub async fn prop(&self, e: &Element, name: &str) -> Value {
        self.element_get(e, &format!("property/{name}")).await
    }

    pub async fn enabled(&self, e: &Element) -> bool {
        self.element_get(e, "enabled")
            .await
            .as_bool()
            .unwrap_or(false)
    }

    pub async fn type_text(&self, e: &Element, text: &str) {
        self.element_post(e, "clear", json!({})).await;
        self.element_post(e, "value", json!({"text": text})).await;
    }

    pub async fn execute(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits up to `timeout` for `check` to hold, polling every 100 ms.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut(&Session) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self).await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session: tauri-driver closes the app.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}
