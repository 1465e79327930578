//! Hashes of the queued bytes, kept off the sending path. A piece's digest
//! in the journal only has to notice that local bytes changed before they
//! are sent (on resume, before a re-created upload), so new pieces carry a
//! fast non-cryptographic XXH3-128 (`xxh3-128:<hex>`, [`piece_digest`]); a
//! digest without a prefix is the SHA-256 hex earlier versions journaled,
//! and still verifies ([`verify_piece`]). A slice of a durable file is
//! queued [`UNREAD`] instead of being read twice: its XXH3 is taken as its
//! bytes are first read for sending and journaled once they are
//! acknowledged (until then the file's length, and for a whole-file upload
//! its size and mtime, stand for it). The whole upload's SHA-256, which
//! the completion reports, is a [`WholeHash`] fed by the PATCH body as it
//! reads the bytes for sending — each byte once, in order, however often it
//! is sent — and whatever this process never read (the server had it
//! before a restart, or from an attached producer) is read at completion.

use std::io::{Read, Seek};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::{Xxh3Default, xxh3_128};

use crate::error::{ClientError, Result};
use crate::journal::Piece;

/// The prefix of the digests this version journals.
const XXH3_128: &str = "xxh3-128:";

/// The digest of a piece whose bytes were not read yet: an XXH3-128 is
/// taken when they are first read for sending (see [`WholeHash::expect`]).
/// Its colon makes an earlier version refuse it as "queued by a newer
/// Spool" rather than take it for SHA-256 hex.
pub const UNREAD: &str = "unread:xxh3-128";

/// Block size of the hashing reads: small enough to stay in the CPU's L2
/// cache between the read and the hash.
const HASH_BLOCK: usize = 256 * 1024;

fn xxh3_hex(h: u128) -> String {
    format!("{XXH3_128}{h:032x}")
}

/// The journaled digest of a piece whose bytes are `data`.
pub fn piece_digest(data: &[u8]) -> String {
    xxh3_hex(xxh3_128(data))
}

/// Reads `[offset, offset+len)` of `path`, feeding it to `f` block by block.
pub(crate) fn read_range(
    path: &Path,
    offset: u64,
    len: u64,
    mut f: impl FnMut(&[u8]),
) -> Result<()> {
    let mut file = std::fs::File::open(path).map_err(|e| ClientError::io(path, e))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| ClientError::io(path, e))?;
    let mut left = len;
    let mut buf = vec![0u8; HASH_BLOCK.min(len as usize)];
    while left > 0 {
        let n = (left as usize).min(buf.len());
        file.read_exact(&mut buf[..n])
            .map_err(|e| ClientError::io(path, e))?;
        f(&buf[..n]);
        left -= n as u64;
    }
    Ok(())
}

/// A hasher for the algorithm a journaled digest names.
enum PieceHasher {
    Xxh3(Box<Xxh3Default>),
    /// Journals of earlier versions: bare SHA-256 hex.
    Sha256(Sha256),
}

impl PieceHasher {
    /// `None` for an algorithm this version does not know (a journal of a
    /// newer one).
    fn for_digest(digest: &str) -> Option<PieceHasher> {
        if digest.starts_with(XXH3_128) {
            Some(PieceHasher::Xxh3(Box::new(Xxh3Default::new())))
        } else if !digest.contains(':') {
            Some(PieceHasher::Sha256(Sha256::new()))
        } else {
            None
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            PieceHasher::Xxh3(h) => h.update(data),
            PieceHasher::Sha256(h) => h.update(data),
        }
    }

    fn matches(self, digest: &str) -> bool {
        match self {
            PieceHasher::Xxh3(h) => xxh3_hex(h.digest128()) == digest,
            PieceHasher::Sha256(h) => hex::encode(h.finalize()).eq_ignore_ascii_case(digest),
        }
    }
}

/// Reads a piece and checks its bytes against its journaled digest, handing
/// each block to `also` with its offset in the upload on the way.
/// [`ClientError::LocalDataChanged`] when they differ or cannot be read.
pub(crate) fn verify_piece(p: &Piece, mut also: impl FnMut(u64, &[u8])) -> Result<()> {
    if p.digest == UNREAD {
        // Nothing to compare with: the bytes are taken as they are now.
        let mut at = p.start;
        return read_range(&p.path, p.file_offset, p.len, |b| {
            also(at, b);
            at += b.len() as u64;
        })
        .map_err(|e| {
            ClientError::LocalDataChanged(format!("piece {} ({}): {e}", p.seq, p.path.display()))
        });
    }
    let Some(mut h) = PieceHasher::for_digest(&p.digest) else {
        return Err(ClientError::LocalDataChanged(format!(
            "piece {} of {} has a digest of an unknown kind ({}); it was queued by a newer Spool",
            p.seq,
            p.path.display(),
            p.digest.split(':').next().unwrap_or_default()
        )));
    };
    let mut at = p.start;
    read_range(&p.path, p.file_offset, p.len, |b| {
        h.update(b);
        also(at, b);
        at += b.len() as u64;
    })
    .map_err(|e| {
        ClientError::LocalDataChanged(format!("piece {} ({}): {e}", p.seq, p.path.display()))
    })?;
    if !h.matches(&p.digest) {
        return Err(ClientError::LocalDataChanged(format!(
            "piece {} of {} no longer matches its digest",
            p.seq,
            p.path.display()
        )));
    }
    Ok(())
}

/// Whether a piece's bytes are still on disk as queued, as far as can be
/// told without reading more than needed: a hashed piece is read and
/// compared, an [`UNREAD`] one only has to be there in full.
pub(crate) fn check_piece(p: &Piece) -> Result<()> {
    if p.digest != UNREAD {
        return verify_piece(p, |_, _| {});
    }
    let meta = std::fs::metadata(&p.path).map_err(|e| {
        ClientError::LocalDataChanged(format!("piece {} ({}): {e}", p.seq, p.path.display()))
    })?;
    if meta.len() < p.file_offset + p.len {
        return Err(ClientError::LocalDataChanged(format!(
            "{} is shorter than when piece {} was queued",
            p.path.display(),
            p.seq
        )));
    }
    Ok(())
}

/// The running SHA-256 of the upload's bytes `[0, hashed)`. Cloning shares
/// it. Every reader of the upload's bytes may [`WholeHash::feed`] what it
/// read; only the bytes that continue the hash are taken, so a byte sent
/// twice is hashed once, and a block past a gap is left to
/// [`WholeHash::finish`].
#[derive(Clone, Default)]
pub struct WholeHash(Arc<Mutex<Running>>);

#[derive(Default)]
struct Running {
    sha: Sha256,
    hashed: u64,
    /// [`UNREAD`] pieces at or past `hashed`, in order: their XXH3 is
    /// taken on the way.
    unread: std::collections::VecDeque<Unread>,
    /// Digests taken and not yet collected by [`WholeHash::take_digests`].
    taken: Vec<(u64, String)>,
}

struct Unread {
    seq: u64,
    start: u64,
    end: u64,
    /// How far its hash reaches.
    at: u64,
    h: Box<Xxh3Default>,
}

impl Running {
    /// Hashes `data`, the upload's bytes from `hashed` on.
    fn advance(&mut self, data: &[u8]) {
        let (start, end) = (self.hashed, self.hashed + data.len() as u64);
        self.sha.update(data);
        while let Some(u) = self.unread.front_mut() {
            if u.start >= end {
                break;
            }
            let (from, to) = (u.start.max(start), u.end.min(end));
            if u.at != from {
                // Its first bytes were hashed before it was expected
                // (cannot happen for a piece queued at the end): it stays
                // unread.
                self.unread.pop_front();
                continue;
            }
            u.h.update(&data[(from - start) as usize..(to - start) as usize]);
            u.at = to;
            if to < u.end {
                break;
            }
            if let Some(u) = self.unread.pop_front() {
                self.taken.push((u.seq, xxh3_hex(u.h.digest128())));
            }
        }
        self.hashed = end;
    }
}

impl WholeHash {
    pub fn new() -> WholeHash {
        WholeHash::default()
    }

    fn lock(&self) -> MutexGuard<'_, Running> {
        // A hasher is only ever updated whole, so a panic elsewhere while
        // it was held leaves nothing half-done.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the XXH3 of `p`, an [`UNREAD`] piece, as its bytes are hashed
    /// (pieces are expected in order, each before any of its bytes).
    pub fn expect(&self, p: &Piece) {
        if p.digest != UNREAD || p.len == 0 {
            return;
        }
        let mut r = self.lock();
        if p.start < r.hashed {
            return;
        }
        r.unread.push_back(Unread {
            seq: p.seq,
            start: p.start,
            end: p.end(),
            at: p.start,
            h: Box::new(Xxh3Default::new()),
        });
    }

    /// The digests of [`UNREAD`] pieces taken since the last call, as
    /// (seq, digest), to journal.
    pub fn take_digests(&self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.lock().taken)
    }

    /// How many of the upload's first bytes are hashed.
    pub fn hashed(&self) -> u64 {
        self.lock().hashed
    }

    /// Offers the upload's bytes `[offset, offset+data.len())`: the part at
    /// or beyond what is hashed is hashed, if the block reaches that far
    /// back; a block that starts past it (a gap) is ignored.
    pub fn feed(&self, offset: u64, data: &[u8]) {
        let mut r = self.lock();
        let end = offset + data.len() as u64;
        if offset <= r.hashed && r.hashed < end {
            let from = (r.hashed - offset) as usize;
            r.advance(&data[from..]);
        }
    }

    /// The SHA-256 (hex) of the upload's bytes `[0, end)`: what was never
    /// fed is read from `pieces` first, each piece read checked against its
    /// digest (the server already has those bytes; a changed file would make
    /// the hash lie about them). Blocking.
    pub fn finish(&self, pieces: &[Piece], end: u64) -> Result<String> {
        let mut r = self.lock();
        for p in pieces {
            if r.hashed >= end {
                break;
            }
            if p.end() <= r.hashed || p.len == 0 {
                continue;
            }
            verify_piece(p, |at, b| {
                let block_end = at + b.len() as u64;
                if at <= r.hashed && r.hashed < block_end {
                    let from = (r.hashed - at) as usize;
                    let to = (end.min(block_end) - at) as usize;
                    if from < to {
                        r.advance(&b[from..to]);
                    }
                }
            })?;
        }
        if r.hashed != end {
            return Err(ClientError::Internal(format!(
                "the upload's SHA-256 covers {} of its {end} bytes",
                r.hashed
            )));
        }
        Ok(hex::encode(r.sha.clone().finalize()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sha256_hex(d: &[u8]) -> String {
        hex::encode(Sha256::digest(d))
    }

    fn piece(seq: u64, path: &Path, file_offset: u64, len: u64, start: u64) -> Piece {
        let mut bytes = vec![0u8; len as usize];
        let mut f = std::fs::File::open(path).unwrap();
        f.seek(std::io::SeekFrom::Start(file_offset)).unwrap();
        f.read_exact(&mut bytes).unwrap();
        Piece {
            seq,
            path: path.to_owned(),
            file_offset,
            len,
            start,
            digest: piece_digest(&bytes),
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn unread_pieces_get_the_digest_of_the_bytes_read_for_sending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes = data(HASH_BLOCK * 2 + 12_345);
        std::fs::write(&path, &bytes).unwrap();
        // Three unread pieces of the file, the middle one off the file's start.
        let cuts = [0u64, 100_000, 400_001, bytes.len() as u64];
        let pieces: Vec<Piece> = cuts
            .windows(2)
            .enumerate()
            .map(|(i, w)| Piece {
                seq: i as u64,
                path: path.clone(),
                file_offset: w[0],
                len: w[1] - w[0],
                start: w[0],
                digest: UNREAD.into(),
            })
            .collect();
        let whole = WholeHash::new();
        pieces.iter().for_each(|p| whole.expect(p));
        // Blocks of an odd size, one of them sent twice (a cut PATCH).
        let mut at = 0usize;
        while at < 300_000 {
            let end = (at + 77_777).min(bytes.len());
            whole.feed(at as u64, &bytes[at..end]);
            whole.feed(at as u64, &bytes[at..end]);
            at = end;
        }
        let taken = whole.take_digests();
        assert_eq!(taken, vec![(0, piece_digest(&bytes[..100_000]))]);
        assert!(whole.take_digests().is_empty(), "taken once");
        // The rest is read at completion: the pieces' digests on the way.
        let sha = whole.finish(&pieces, bytes.len() as u64).unwrap();
        assert_eq!(sha, sha256_hex(&bytes));
        assert_eq!(
            whole.take_digests(),
            vec![
                (1, piece_digest(&bytes[100_000..400_001])),
                (2, piece_digest(&bytes[400_001..])),
            ]
        );
        assert!(piece_digest(b"").starts_with("xxh3-128:"));
        assert_eq!(piece_digest(b"abc").len(), "xxh3-128:".len() + 32);
    }

    #[test]
    fn an_unread_piece_is_checked_by_its_length_and_not_taken_for_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data(1000)).unwrap();
        let mut p = Piece {
            seq: 0,
            path: path.clone(),
            file_offset: 200,
            len: 800,
            start: 0,
            digest: UNREAD.into(),
        };
        check_piece(&p).unwrap();
        p.len = 801;
        assert!(matches!(
            check_piece(&p),
            Err(ClientError::LocalDataChanged(_))
        ));
        assert!(
            PieceHasher::for_digest(UNREAD).is_none(),
            "an earlier version refuses it rather than taking it for SHA-256"
        );
    }

    #[test]
    fn pieces_of_either_kind_verify_and_a_change_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes = data(300_000);
        std::fs::write(&path, &bytes).unwrap();
        let new = piece(0, &path, 0, 300_000, 0);
        verify_piece(&new, |_, _| {}).unwrap();
        // A piece as the previous version journaled it: bare SHA-256 hex.
        let old = Piece {
            digest: sha256_hex(&bytes[1000..]),
            ..piece(1, &path, 1000, 299_000, 0)
        };
        assert!(!old.digest.contains(':'));
        verify_piece(&old, |_, _| {}).unwrap();
        let mut upper = old.clone();
        upper.digest = upper.digest.to_uppercase();
        verify_piece(&upper, |_, _| {}).unwrap();
        // A newer version's algorithm is not taken for a match.
        let unknown = Piece {
            digest: "blake3:00".into(),
            ..new.clone()
        };
        assert!(matches!(
            verify_piece(&unknown, |_, _| {}),
            Err(ClientError::LocalDataChanged(_))
        ));
        let mut changed = bytes.clone();
        changed[150_000] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        for p in [&new, &old] {
            assert!(matches!(
                verify_piece(p, |_, _| {}),
                Err(ClientError::LocalDataChanged(_))
            ));
        }
        // A file that became shorter.
        std::fs::write(&path, &bytes[..1000]).unwrap();
        assert!(matches!(
            verify_piece(&old, |_, _| {}),
            Err(ClientError::LocalDataChanged(_))
        ));
    }

    /// Blocks offered out of order, overlapping, repeated (a PATCH cut and
    /// sent again from the server's offset) are each hashed once.
    #[test]
    fn every_byte_is_fed_once_however_often_it_is_offered() {
        let bytes = data(10_000);
        let whole = WholeHash::new();
        let offer = |from: usize, to: usize| whole.feed(from as u64, &bytes[from..to]);
        offer(0, 1000);
        offer(1000, 3000);
        // Cut at 2500: sent again from there, in other block sizes.
        offer(2500, 2600);
        offer(2600, 4000);
        // A block past a gap is not taken...
        offer(5000, 6000);
        assert_eq!(whole.hashed(), 4000);
        // ... and the same bytes again, in order, are.
        offer(0, 4500);
        offer(4500, 10_000);
        offer(9000, 10_000);
        assert_eq!(whole.hashed(), 10_000);
        assert_eq!(whole.finish(&[], 10_000).unwrap(), sha256_hex(&bytes));
    }

    /// What was never fed (bytes the server had before a restart) is read
    /// from the pieces at the end, across pieces and from within one.
    #[test]
    fn finish_reads_the_gap_from_the_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let bytes = data(700_000);
        std::fs::write(&a, &bytes[..400_000]).unwrap();
        // The second piece lives at an offset of another file.
        let mut other = vec![9u8; 50];
        other.extend_from_slice(&bytes[400_000..]);
        std::fs::write(&b, &other).unwrap();
        let pieces = [
            piece(0, &a, 0, 400_000, 0),
            piece(1, &b, 50, 300_000, 400_000),
        ];
        for fed in [0usize, 123_456, 400_000, 500_001, 700_000] {
            let whole = WholeHash::new();
            whole.feed(0, &bytes[..fed]);
            assert_eq!(
                whole.finish(&pieces, 700_000).unwrap(),
                sha256_hex(&bytes),
                "fed {fed}"
            );
        }
        // A piece that changed after the server got it fails the hash.
        std::fs::write(&a, vec![0u8; 400_000]).unwrap();
        assert!(matches!(
            WholeHash::new().finish(&pieces, 700_000),
            Err(ClientError::LocalDataChanged(_))
        ));
    }
}
