//! Which resumable-upload protocol an upload speaks, and every part of a
//! request or answer that differs between them: TUS 1.0.0, or the IETF
//! draft "Resumable Uploads for HTTP" at [`Interop::NEWEST`] (whose rules,
//! such as Structured Field syntax and `Upload-Limit`, live in
//! `spool_proto::ietf`). A [`Protocol`] is what the user asked for; one
//! OPTIONS request resolves it ([`decide`]) into the [`Wire`] that builds
//! every later request of the session (`tus.rs` sends them, `remote.rs`
//! deletes with them). The draft is chosen only when the server says it
//! speaks it, never guessed; the retry policy, the journal and error
//! classification do not depend on the wire.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use spool_proto::checksum::{Checksum, ChecksumAlgorithm};
use spool_proto::ietf::{self, Interop, UploadLimit};
use spool_proto::tus as h;

use crate::error::{ClientError, Result};
use crate::tus::HeadInfo;

/// The protocol asked for (`--protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// TUS 1.0.0 only; the draft's interop header is never sent.
    Tus,
    /// The IETF draft only: a server that does not speak it is an error
    /// ([`ClientError::Unsupported`]).
    Ietf,
    /// The draft where the server says it speaks it, else TUS.
    #[default]
    Auto,
}

impl Protocol {
    /// The value of `--protocol` and of the journal's options.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tus => "tus",
            Protocol::Ietf => "ietf",
            Protocol::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        [Protocol::Tus, Protocol::Ietf, Protocol::Auto]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// The protocol one upload's requests are built with, once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Tus,
    /// The draft at [`Interop::NEWEST`].
    Ietf,
}

/// What OPTIONS told about a server (or an upload resource on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    pub wire: Wire,
    /// The largest upload it takes (`Tus-Max-Size`, or `Upload-Limit`'s `max-size`).
    pub max_size: Option<u64>,
}

/// What an OPTIONS answer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decided {
    Speak(Discovery),
    /// 408, 429 or 5xx without the draft's signs: the server could not say
    /// yet, so ask again later rather than settle for TUS.
    Transient,
}

const INTEROP: Interop = Interop::NEWEST;

fn interop_value() -> HeaderValue {
    HeaderValue::from(INTEROP.number())
}

/// The headers of the discovery OPTIONS: the interop version whenever the
/// draft may be chosen, nothing of the draft's for [`Protocol::Tus`].
pub(crate) fn discovery_headers(protocol: Protocol) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if protocol != Protocol::Tus {
        headers.insert(ietf::INTEROP_VERSION, interop_value());
    }
    headers
}

/// Decides the wire from an OPTIONS answer. The draft is chosen only from a
/// 2xx that carries a readable `Upload-Limit` and echoes this interop
/// version (a TUS server answers OPTIONS too, without either).
pub(crate) fn decide(protocol: Protocol, status: u16, headers: &HeaderMap) -> Result<Decided> {
    let tus = || {
        Decided::Speak(Discovery {
            wire: Wire::Tus,
            max_size: tus_u64(headers, h::TUS_MAX_SIZE).ok().flatten(),
        })
    };
    if protocol == Protocol::Tus {
        return Ok(tus());
    }
    let echoed = text(headers, ietf::INTEROP_VERSION)
        .is_some_and(|v| Interop::from_header(Some(v)) == Ok(Some(INTEROP)));
    let limit = text(headers, ietf::UPLOAD_LIMIT).and_then(UploadLimit::parse);
    if let (true, true, Some(limit)) = ((200..300).contains(&status), echoed, limit) {
        return Ok(Decided::Speak(Discovery {
            wire: Wire::Ietf,
            max_size: limit.max_size,
        }));
    }
    if matches!(status, 408 | 429 | 500..=599) {
        return Ok(Decided::Transient);
    }
    match protocol {
        Protocol::Ietf => {
            let missing: Vec<&str> = [
                (!(200..300).contains(&status)).then_some("a 2xx status"),
                (!echoed).then_some("Upload-Draft-Interop-Version: 8"),
                limit.is_none().then_some("Upload-Limit"),
            ]
            .into_iter()
            .flatten()
            .collect();
            Err(ClientError::Unsupported(format!(
                "--protocol ietf: the server does not speak the IETF resumable-upload draft (interop {}): its OPTIONS answer ({status}) lacks {}; use --protocol tus or auto",
                INTEROP.number(),
                missing.join(", ")
            )))
        }
        _ => Ok(tus()),
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A TUS number header: absent is `None`, malformed an error.
pub(crate) fn tus_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| h::parse_u64(s).ok())
                .ok_or_else(|| ClientError::Protocol(format!("malformed {name} from the server")))
        })
        .transpose()
}

/// A draft integer field: one that is not an sf-Integer is ignored, as
/// the draft requires of its recipient.
fn sf_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    text(headers, name).and_then(|v| ietf::parse_integer(v).ok())
}

fn sf_bool(headers: &HeaderMap, name: &str) -> Option<bool> {
    text(headers, name).and_then(|v| ietf::parse_boolean(v).ok())
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: impl TryInto<HeaderValue>) {
    if let Ok(v) = value.try_into() {
        headers.insert(HeaderName::from_static(name), v);
    }
}

impl Wire {
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Tus => "tus",
            Wire::Ietf => "ietf",
        }
    }

    /// The header every request of this wire carries.
    pub(crate) fn tag(self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        match self {
            Wire::Tus => insert(&mut headers, h::TUS_RESUMABLE, h::TUS_VERSION),
            Wire::Ietf => {
                headers.insert(ietf::INTEROP_VERSION, interop_value());
            }
        }
        headers
    }

    /// The algorithm a requested checksum is computed with: RFC 9530
    /// digests are SHA-256 here (the draft's `Content-Digest`; SHA-1 is no
    /// digest algorithm there).
    pub(crate) fn checksum_algorithm(self, asked: ChecksumAlgorithm) -> ChecksumAlgorithm {
        match self {
            Wire::Tus => asked,
            Wire::Ietf => ChecksumAlgorithm::Sha256,
        }
    }

    /// The creation POST's headers, for an upload of unknown length: TUS
    /// defers the length; the draft creates an empty, incomplete upload
    /// ("careful creation"). Both carry TUS `Upload-Metadata`, which Spool's
    /// server reads either way.
    pub(crate) fn creation_headers(self, metadata: &str, filename: Option<&str>) -> HeaderMap {
        let mut headers = self.tag();
        match self {
            Wire::Tus => insert(&mut headers, h::UPLOAD_DEFER_LENGTH, "1"),
            Wire::Ietf => {
                insert(&mut headers, ietf::UPLOAD_COMPLETE, ietf::boolean(false));
                insert(&mut headers, "content-length", "0");
                if let Some(name) = filename {
                    insert(
                        &mut headers,
                        "content-disposition",
                        content_disposition(name),
                    );
                }
            }
        }
        if !metadata.is_empty() {
            insert(&mut headers, h::UPLOAD_METADATA, metadata);
        }
        headers
    }

    /// Whether a creation answer's status is a success.
    pub(crate) fn created(self, status: u16) -> bool {
        match self {
            Wire::Tus => status == 201,
            Wire::Ietf => (200..300).contains(&status),
        }
    }

    /// The headers of an append of `len` bytes at `start`; `upload_length`
    /// is set on the last one, which the draft marks `Upload-Complete: ?1`.
    pub(crate) fn patch_headers(
        self,
        start: u64,
        len: u64,
        upload_length: Option<u64>,
        checksum: Option<&Checksum>,
    ) -> HeaderMap {
        let mut headers = self.tag();
        insert(&mut headers, h::UPLOAD_OFFSET, start);
        insert(&mut headers, "content-length", len);
        if let Some(l) = upload_length {
            insert(&mut headers, h::UPLOAD_LENGTH, l);
        }
        match self {
            Wire::Tus => {
                insert(&mut headers, "content-type", h::OFFSET_OCTET_STREAM);
                if let Some(c) = checksum {
                    insert(&mut headers, h::UPLOAD_CHECKSUM, c.to_header());
                }
            }
            Wire::Ietf => {
                insert(&mut headers, "content-type", ietf::PARTIAL_UPLOAD);
                insert(
                    &mut headers,
                    ietf::UPLOAD_COMPLETE,
                    ietf::boolean(upload_length.is_some()),
                );
                if let Some(c) = checksum.filter(|c| c.algorithm == ChecksumAlgorithm::Sha256) {
                    insert(
                        &mut headers,
                        ietf::CONTENT_DIGEST,
                        ietf::digest_header(&c.digest),
                    );
                }
            }
        }
        headers
    }

    /// Whether an append's answer status is an acknowledgement.
    pub(crate) fn appended(self, status: u16) -> bool {
        match self {
            Wire::Tus => status == 204,
            Wire::Ietf => (200..300).contains(&status),
        }
    }

    /// The new offset from a successful append's answer. The draft's answer
    /// need not carry `Upload-Offset` (since -06), so without one the whole
    /// body counts; its `Upload-Complete` must agree with what was asked,
    /// since an upload completes exactly once.
    pub(crate) fn offset_after_append(
        self,
        headers: &HeaderMap,
        start: u64,
        len: u64,
        completing: bool,
    ) -> Result<u64> {
        match self {
            Wire::Tus => tus_u64(headers, h::UPLOAD_OFFSET)?
                .ok_or_else(|| ClientError::Protocol("PATCH answer without Upload-Offset".into())),
            Wire::Ietf => {
                let offset = sf_u64(headers, h::UPLOAD_OFFSET).unwrap_or(start + len);
                match (completing, sf_bool(headers, ietf::UPLOAD_COMPLETE)) {
                    (true, Some(false)) => Err(ClientError::Protocol(
                        "the server left the upload incomplete after its last append".into(),
                    )),
                    (false, Some(true)) => Err(ClientError::Protocol(
                        "the server completed the upload before its last append".into(),
                    )),
                    (true, _) if offset != start + len => Err(ClientError::Protocol(format!(
                        "the server completed the upload at offset {offset}, not {}",
                        start + len
                    ))),
                    _ => Ok(offset),
                }
            }
        }
    }

    /// What a successful HEAD says. `declared` is whether the server needs
    /// nothing but the remaining bytes to complete: TUS knows the length;
    /// the draft saw its completing append (`Upload-Complete: ?1`), for
    /// only that ends a draft upload.
    pub(crate) fn head_info(self, headers: &HeaderMap) -> Result<HeadInfo> {
        let missing = || ClientError::Protocol("HEAD answer without Upload-Offset".into());
        match self {
            Wire::Tus => {
                let offset = tus_u64(headers, h::UPLOAD_OFFSET)?.ok_or_else(missing)?;
                let length = tus_u64(headers, h::UPLOAD_LENGTH)?;
                Ok(HeadInfo {
                    offset,
                    length,
                    declared: length.is_some(),
                })
            }
            Wire::Ietf => Ok(HeadInfo {
                offset: sf_u64(headers, h::UPLOAD_OFFSET).ok_or_else(missing)?,
                length: sf_u64(headers, h::UPLOAD_LENGTH),
                declared: sf_bool(headers, ietf::UPLOAD_COMPLETE) == Some(true),
            }),
        }
    }
}

/// `inline; filename="…"` (RFC 6266), with an RFC 8187 `filename*` when
/// the name is not printable ASCII, so any file name fits a header value.
fn content_disposition(name: &str) -> String {
    let printable = |c: char| c.is_ascii() && !c.is_ascii_control();
    let fallback: String = name
        .chars()
        .map(|c| if printable(c) { c } else { '_' })
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    if name.chars().all(printable) {
        return format!("inline; filename=\"{fallback}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("inline; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests;
