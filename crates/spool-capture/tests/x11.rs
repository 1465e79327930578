//! X11 capture against a real Xvfb: the colours painted on the virtual
//! screen come back in the grabbed pixels, through MIT-SHM, for the whole
//! display and for a region.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spool_capture::{Rect, SourceSpec, X11Target};
use spool_testkit::Xvfb;

fn mean_bgr(buf: &[u8]) -> [u32; 3] {
    let n = (buf.len() / 4) as u64;
    let mut s = [0u64; 3];
    for px in buf.chunks_exact(4) {
        for k in 0..3 {
            s[k] += px[k] as u64;
        }
    }
    [(s[0] / n) as u32, (s[1] / n) as u32, (s[2] / n) as u32]
}

#[test]
fn grabs_the_painted_screen_and_a_region() {
    let x = Xvfb::start(320, 240);
    x.paint("red");
    let mut src = spool_capture::open(&SourceSpec::X11 {
        display: Some(x.display.clone()),
        target: X11Target::Display,
    })
    .unwrap();
    assert_eq!(src.size(), (320, 240));
    assert!(src.describe().contains("MIT-SHM"), "{}", src.describe());
    let mut buf = Vec::new();
    src.grab(0, &mut buf).unwrap();
    let [b, g, r] = mean_bgr(&buf);
    assert!(r > 240 && g < 15 && b < 15, "mean BGR {b},{g},{r}");
    x.paint("blue");
    src.grab(1, &mut buf).unwrap();
    let [b, g, r] = mean_bgr(&buf);
    assert!(b > 240 && g < 15 && r < 15, "mean BGR {b},{g},{r}");

    let region = Rect {
        x: 10,
        y: 20,
        width: 100,
        height: 50,
    };
    let mut src = spool_capture::open(&SourceSpec::X11 {
        display: Some(x.display.clone()),
        target: X11Target::Region(region),
    })
    .unwrap();
    assert_eq!(src.size(), (100, 50));
    src.grab(0, &mut buf).unwrap();
    assert_eq!(buf.len(), 100 * 50 * 4);
    let outside = SourceSpec::X11 {
        display: Some(x.display.clone()),
        target: X11Target::Region(Rect {
            x: 300,
            y: 0,
            width: 100,
            height: 10,
        }),
    };
    assert!(spool_capture::open(&outside).is_err());

    let targets = spool_capture::list(Some(&x.display)).unwrap();
    assert_eq!(targets[0].width, 320);
    assert_eq!(targets[0].source, format!("x11:{}", x.display));
}

#[test]
fn a_missing_display_is_a_clear_error() {
    let err = spool_capture::open(&SourceSpec::X11 {
        display: Some(":4242".into()),
        target: X11Target::Display,
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains(":4242"), "{err}");
    // No xdg-desktop-portal here (no session bus): a clear error, quickly.
    let t0 = std::time::Instant::now();
    let err = spool_capture::open(&SourceSpec::Screen(0)).err().unwrap();
    assert!(
        err.to_string()
            .contains("ScreenCast portal is not available"),
        "{err}"
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn lists_and_captures_one_window() {
    let x = Xvfb::start(400, 300);
    x.paint("green");
    // xev opens a 178x178 window; with no window manager it maps at once.
    let mut xev = std::process::Command::new("xev")
        .args(["-display", &x.display, "-geometry", "120x80+30+40"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("xev is installed by scripts/setup.sh (x11-utils)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let window = loop {
        let targets = spool_capture::list(Some(&x.display)).unwrap();
        if let Some(w) = targets
            .into_iter()
            .find(|t| t.source.starts_with("window:"))
        {
            break w;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "xev's window never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!((window.width, window.height), (120, 80));
    let spec = SourceSpec::parse(&window.source, None).unwrap();
    let spec = match spec {
        SourceSpec::X11 { target, .. } => SourceSpec::X11 {
            display: Some(x.display.clone()),
            target,
        },
        other => other,
    };
    let mut src = spool_capture::open(&spec).unwrap();
    assert_eq!(src.size(), (120, 80));
    let mut buf = Vec::new();
    src.grab(0, &mut buf).unwrap();
    // xev's window is white, not the green root behind it.
    let [b, g, r] = mean_bgr(&buf);
    assert!(b > 200 && g > 200 && r > 200, "mean BGR {b},{g},{r}");
    let _ = xev.kill();
    let _ = xev.wait();
}
