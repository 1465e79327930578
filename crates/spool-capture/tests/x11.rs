//! X11 capture against a real Xvfb: the colours painted on the virtual
//! screen come back in the grabbed pixels, through MIT-SHM, for the whole
//! display and for a region.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spool_capture::{Rect, SourceSpec, X11Target};
use spool_e2e::Xvfb;

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
    let err = spool_capture::open(&SourceSpec::Screen(0)).err().unwrap();
    assert!(err.to_string().contains("screen:0"), "{err}");
}
