//! probe, normalize and poster against files the ffmpeg CLI generates
//! (lavfi `testsrc2` and `sine`), checked with ffprobe. One test binary;
//! each test makes its inputs in its own temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod normalize;
mod poster;
mod probe;
mod support;
