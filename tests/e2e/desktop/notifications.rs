//! The desktop notification (notify-rust) reaching a real notification
//! daemon: dunst on a private D-Bus session bus, watched with dbus-monitor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// A private D-Bus session bus with a notification daemon (dunst) on it,
/// and a monitor recording every Notify call. Everything it started stops
/// when it is dropped.
struct NotificationBus {
    children: Vec<std::process::Child>,
    address: String,
    log: PathBuf,
}

impl Drop for NotificationBus {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl NotificationBus {
    fn start(dir: &Path, display: &str) -> NotificationBus {
        use std::io::BufRead as _;
        use std::process::{Command, Stdio};
        let mut daemon = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (scripts/setup.sh installs it)");
        let out = daemon.stdout.take().unwrap();
        let mut bus = NotificationBus {
            children: vec![daemon],
            address: String::new(),
            log: dir.join("notifications.txt"),
        };
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        bus.address = line.trim().to_owned();
        bus.children.push(
            Command::new("dunst")
                .env("DISPLAY", display)
                .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        bus.children.push(
            Command::new("dbus-monitor")
                .args([
                    "--address",
                    &bus.address,
                    "interface='org.freedesktop.Notifications',member='Notify'",
                ])
                .stdout(std::fs::File::create(&bus.log).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // dunst owns the name once it is up.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("dbus-send")
                .arg(format!("--bus={}", bus.address))
                .args([
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.Notifications",
                ])
                .stderr(Stdio::null())
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                return bus;
            }
            assert!(std::time::Instant::now() < deadline, "dunst did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn seen(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_desktop_notification_tells_the_link_is_ready() {
    let _one = ONE_APP_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut app = App::new(dir.path(), None);
    let bus = NotificationBus::start(dir.path(), &app.x.display);
    app.env
        .push(("DBUS_SESSION_BUS_ADDRESS".into(), bus.address.clone()));
    let (driver, s) = app.launch(1).await;
    record(&s).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(&s).await;
    let link = share_link(&s, Duration::from_secs(60)).await;
    s.wait_for("the notification", Duration::from_secs(10), async |_| {
        let seen = bus.seen();
        (seen.contains("Link ready") && seen.contains(&link)).then_some(())
    })
    .await;
    app.quit(driver, s).await;
}
