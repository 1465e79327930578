//! Where an upload's bytes live in the bucket, and which objects hold
//! which bytes. A finished upload is one object, `uploads/<id>`. Until then
//! every acknowledged byte is in an object of its own under
//! `pending/<id>/`: parts `p<start>` (exactly the store's part size, each
//! also copied into the upload's multipart upload as it is made) and tail
//! segments `t<start>` (what arrived since the last part, smaller than a
//! part: one per PATCH). `mpu` holds the multipart upload's id. Object
//! keys carry their byte offset, so one listing tells any node how far the
//! upload reaches. A part is written before the tail segments it absorbs
//! are deleted, so for a moment both cover the same bytes: [`chain`]
//! reads the listing as the contiguous run from byte 0 that prefers the
//! longest object at each offset.

/// What an object under `pending/<id>/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Part,
    Tail,
}

/// One object holding bytes `[start, start + size)` of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Obj {
    pub key: String,
    pub kind: Kind,
    pub start: u64,
    pub size: u64,
    /// As listed (a part's tells whether the multipart upload holds the
    /// same bytes).
    pub etag: Option<String>,
}

impl Obj {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// Key names under the store's prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let mut prefix = prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        Keys { prefix }
    }

    /// The finished upload.
    pub fn done(&self, id: &str) -> String {
        format!("{}uploads/{id}", self.prefix)
    }

    /// Where finished uploads are listed.
    pub fn done_prefix(&self) -> String {
        format!("{}uploads/", self.prefix)
    }

    /// Everything of an unfinished upload.
    pub fn pending(&self, id: &str) -> String {
        format!("{}pending/{id}/", self.prefix)
    }

    /// Where unfinished uploads are listed.
    pub fn pending_root(&self) -> String {
        format!("{}pending/", self.prefix)
    }

    /// The object naming the upload's multipart upload.
    pub fn mpu(&self, id: &str) -> String {
        format!("{}mpu", self.pending(id))
    }

    pub fn part(&self, id: &str, start: u64) -> String {
        format!("{}p{start:020}", self.pending(id))
    }

    pub fn tail(&self, id: &str, start: u64) -> String {
        format!("{}t{start:020}", self.pending(id))
    }

    /// The object a listed key under `pending/<id>/` is, if it holds bytes.
    pub fn parse(&self, id: &str, key: &str, size: u64, etag: Option<String>) -> Option<Obj> {
        let name = key.strip_prefix(&self.pending(id))?;
        let (kind, digits) = match name.split_at_checked(1)? {
            ("p", d) => (Kind::Part, d),
            ("t", d) => (Kind::Tail, d),
            _ => return None,
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Obj {
            key: key.to_owned(),
            kind,
            start: digits.parse().ok()?,
            size,
            etag,
        })
    }
}

/// The objects that hold bytes `[0, n)` in order, and `n`: at each offset
/// the longest object starting there. Objects off the chain (a segment a
/// part absorbed, bytes past a gap) are the second list.
pub(super) fn chain(mut objs: Vec<Obj>) -> (Vec<Obj>, u64, Vec<Obj>) {
    objs.retain(|o| o.size > 0);
    objs.sort_by(|a, b| a.start.cmp(&b.start).then(b.size.cmp(&a.size)));
    let (mut on, mut off, mut at) = (Vec::new(), Vec::new(), 0u64);
    for o in objs {
        if o.start == at {
            at = o.end();
            on.push(o);
        } else {
            off.push(o);
        }
    }
    (on, at, off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(keys: &Keys, kind: Kind, start: u64, size: u64) -> Obj {
        let key = match kind {
            Kind::Part => keys.part("u", start),
            Kind::Tail => keys.tail("u", start),
        };
        Obj {
            key,
            kind,
            start,
            size,
            etag: None,
        }
    }

    #[test]
    fn keys_round_trip_and_sort_by_offset() {
        let k = Keys::new("/spool/");
        assert_eq!(k.done("u"), "spool/uploads/u");
        assert_eq!(k.part("u", 5), "spool/pending/u/p00000000000000000005");
        let o = k.parse("u", &k.tail("u", 123), 7, None).unwrap();
        assert_eq!((o.kind, o.start, o.end()), (Kind::Tail, 123, 130));
        assert_eq!(k.parse("u", &k.mpu("u"), 10, None), None);
        assert_eq!(k.parse("u", "spool/pending/u/x1", 10, None), None);
        assert_eq!(
            k.parse("u", "spool/pending/v/p00000000000000000005", 1, None),
            None
        );
        assert_eq!(Keys::new("").done("u"), "uploads/u");
    }

    #[test]
    fn a_part_wins_over_the_segments_it_absorbed() {
        let k = Keys::new("");
        let part = obj(&k, Kind::Part, 0, 100);
        let segs = [obj(&k, Kind::Tail, 0, 40), obj(&k, Kind::Tail, 40, 30)];
        let after = obj(&k, Kind::Tail, 100, 5);
        let (on, n, off) = chain(vec![
            segs[1].clone(),
            after.clone(),
            segs[0].clone(),
            part.clone(),
        ]);
        assert_eq!(n, 105);
        assert_eq!(on, vec![part, after]);
        assert_eq!(off.len(), 2);
    }

    #[test]
    fn a_gap_ends_the_chain() {
        let k = Keys::new("");
        let (on, n, off) = chain(vec![obj(&k, Kind::Tail, 0, 10), obj(&k, Kind::Tail, 20, 5)]);
        assert_eq!((on.len(), n, off.len()), (1, 10, 1));
        assert_eq!(chain(Vec::new()).1, 0);
    }
}
