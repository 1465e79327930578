//! HLS media playlists (version 7) over an [`crate::index`]: `EXT-X-MAP` for
//! the init segment and one `EXT-X-BYTERANGE` segment per keyframe-led
//! segment, all byte ranges of one object (zero copies). A live playlist has
//! no `EXT-X-ENDLIST` and grows; the finished one ends with it.
//!
//! CONTRACT (filled in by the index helper; keep these signatures).

use crate::index::{InitInfo, Segment};

/// Renders the playlist. `uri` is the object's URL as the playlist names it
/// (relative or absolute); `ended` adds `EXT-X-ENDLIST` (and
/// `EXT-X-PLAYLIST-TYPE:VOD`; a live one is `EVENT`).
pub fn media_playlist(init: &InitInfo, segments: &[Segment], uri: &str, ended: bool) -> String {
    let _ = (init, segments, uri, ended);
    unimplemented!("index helper")
}
