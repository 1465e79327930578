//! The progressive MP4 that seeks at once, made of the uploaded bytes without
//! copying them: a header (the init segment with its durations filled in,
//! then a `sidx` box indexing every segment) followed by the object's bytes
//! from the first segment to the end of the last. Players read the duration
//! and every seek point from the first request.
//!
//! CONTRACT (filled in by the index helper; keep these signatures).

use crate::MediaError;
use crate::index::{InitInfo, Segment};

/// The header: `init_bytes` (the object's bytes `[0, init.len)`) with the
/// movie/track durations patched in place where the boxes have them, plus a
/// `sidx` box. The full file is `header ++ object[segments[0].offset ..
/// last.offset + last.len]`.
pub fn header(
    init_bytes: &[u8],
    init: &InitInfo,
    segments: &[Segment],
) -> Result<Vec<u8>, MediaError> {
    let _ = (init_bytes, init, segments);
    unimplemented!("index helper")
}
