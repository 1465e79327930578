//! What to capture, parsed from the command line's `--source` and `--region`.

use std::path::PathBuf;

use crate::CaptureError;

/// A rectangle in screen pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// Parses `X,Y,W,H`.
    pub fn parse(s: &str) -> Result<Rect, CaptureError> {
        let bad = || {
            CaptureError::Invalid(format!(
                "region {s:?}: expected X,Y,W,H with a positive width and height"
            ))
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [x, y, w, h] = parts.as_slice() else {
            return Err(bad());
        };
        let r = Rect {
            x: x.parse().map_err(|_| bad())?,
            y: y.parse().map_err(|_| bad())?,
            width: w.parse().map_err(|_| bad())?,
            height: h.parse().map_err(|_| bad())?,
        };
        if r.width == 0 || r.height == 0 || r.x < 0 || r.y < 0 {
            return Err(bad());
        }
        Ok(r)
    }
}

/// Which part of an X display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum X11Target {
    Display,
    Window(u32),
    Region(Rect),
}

/// A source to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// An X display (`None`: $DISPLAY).
    X11 {
        display: Option<String>,
        target: X11Target,
    },
    /// A moving test pattern with the frame number drawn in.
    Synthetic { width: u32, height: u32 },
    /// The platform's own capture of screen N.
    Screen(u32),
    /// A video file played as if it were the screen, at its own speed,
    /// looping.
    File(PathBuf),
}

impl SourceSpec {
    /// Parses `x11[:DISPLAY]`, `synthetic[:WxH]`, `screen[:N]`,
    /// `window:ID` or `file:PATH` (everything after the first `:`, so the
    /// path may itself contain `:`), with an optional region (displays
    /// only).
    pub fn parse(source: &str, region: Option<Rect>) -> Result<SourceSpec, CaptureError> {
        let (kind, arg) = source.split_once(':').unwrap_or((source, ""));
        let x11_target = |t| match region {
            Some(r) => X11Target::Region(r),
            None => t,
        };
        match kind {
            "x11" => Ok(SourceSpec::X11 {
                display: (!arg.is_empty()).then(|| arg.to_owned()),
                target: x11_target(X11Target::Display),
            }),
            "window" => {
                let id = if let Some(hex) = arg.strip_prefix("0x") {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    arg.parse().ok()
                };
                let id = id.ok_or_else(|| {
                    CaptureError::Invalid(format!(
                        "window:{arg}: expected a window id (decimal or 0x hex)"
                    ))
                })?;
                if region.is_some() {
                    return Err(CaptureError::Invalid(
                        "--region applies to a display, not to a window".into(),
                    ));
                }
                Ok(SourceSpec::X11 {
                    display: None,
                    target: X11Target::Window(id),
                })
            }
            "synthetic" => {
                let (width, height) = if arg.is_empty() {
                    (1280, 720)
                } else {
                    let (w, h) = arg.split_once('x').ok_or_else(|| {
                        CaptureError::Invalid(format!("synthetic:{arg}: expected WxH"))
                    })?;
                    (
                        w.parse()
                            .map_err(|_| CaptureError::Invalid(format!("bad width {w:?}")))?,
                        h.parse()
                            .map_err(|_| CaptureError::Invalid(format!("bad height {h:?}")))?,
                    )
                };
                Ok(SourceSpec::Synthetic { width, height })
            }
            "screen" => Ok(SourceSpec::Screen(if arg.is_empty() {
                0
            } else {
                arg.parse().map_err(|_| {
                    CaptureError::Invalid(format!("screen:{arg}: expected a number"))
                })?
            })),
            "file" => {
                if arg.is_empty() {
                    return Err(CaptureError::Invalid(
                        "file: expected the path of a video file, as file:PATH".into(),
                    ));
                }
                if region.is_some() {
                    return Err(CaptureError::Invalid(
                        "--region applies to a display, not to a video file".into(),
                    ));
                }
                Ok(SourceSpec::File(PathBuf::from(arg)))
            }
            other => Err(CaptureError::Invalid(format!(
                "unknown source {other:?}: use x11[:DISPLAY], synthetic[:WxH], screen[:N], window:ID or file:PATH"
            ))),
        }
    }
}

/// Something that can be captured, as listed for a picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What to pass as `--source`.
    pub source: String,
    pub name: String,
    pub width: u32,
    pub height: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            SourceSpec::parse("x11", None).unwrap(),
            SourceSpec::X11 {
                display: None,
                target: X11Target::Display
            }
        );
        assert_eq!(
            SourceSpec::parse("x11::99", None).unwrap(),
            SourceSpec::X11 {
                display: Some(":99".into()),
                target: X11Target::Display
            }
        );
        let r = Rect::parse("10,20,300,200").unwrap();
        assert_eq!(
            SourceSpec::parse("x11", Some(r)).unwrap(),
            SourceSpec::X11 {
                display: None,
                target: X11Target::Region(r)
            }
        );
        assert_eq!(
            SourceSpec::parse("window:0x1a00003", None).unwrap(),
            SourceSpec::X11 {
                display: None,
                target: X11Target::Window(0x1a00003)
            }
        );
        assert_eq!(
            SourceSpec::parse("synthetic:640x360", None).unwrap(),
            SourceSpec::Synthetic {
                width: 640,
                height: 360
            }
        );
        assert_eq!(
            SourceSpec::parse("screen:1", None).unwrap(),
            SourceSpec::Screen(1)
        );
        for bad in ["vnc", "window:abc", "synthetic:640", "screen:x"] {
            assert!(SourceSpec::parse(bad, None).is_err(), "{bad}");
        }
        for bad in ["1,2,3", "1,2,0,4", "-1,0,10,10", "a,b,c,d"] {
            assert!(Rect::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_a_file_source_whose_path_may_hold_colons() {
        assert_eq!(
            SourceSpec::parse("file:demo.mp4", None).unwrap(),
            SourceSpec::File(PathBuf::from("demo.mp4"))
        );
        assert_eq!(
            SourceSpec::parse("file:/tmp/a:b/c:d.mkv", None).unwrap(),
            SourceSpec::File(PathBuf::from("/tmp/a:b/c:d.mkv"))
        );
        assert_eq!(
            SourceSpec::parse("file:C:\\videos\\demo.mp4", None).unwrap(),
            SourceSpec::File(PathBuf::from("C:\\videos\\demo.mp4"))
        );
    }

    #[test]
    fn rejects_a_file_source_without_a_path_or_with_a_region() {
        for bad in ["file", "file:"] {
            let err = SourceSpec::parse(bad, None).unwrap_err().to_string();
            assert!(err.contains("file:PATH"), "{bad}: {err}");
        }
        let r = Rect::parse("0,0,10,10").unwrap();
        let err = SourceSpec::parse("file:a.mp4", Some(r))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--region"), "{err}");
    }

    #[test]
    fn the_unknown_source_message_lists_every_kind() {
        let err = SourceSpec::parse("vnc", None).unwrap_err().to_string();
        for kind in ["x11", "synthetic", "screen", "window:ID", "file:PATH"] {
            assert!(err.contains(kind), "{kind} missing from {err}");
        }
    }
}
