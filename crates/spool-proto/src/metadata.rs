//! The `Upload-Metadata` codec: comma-separated `key base64value` pairs, keys
//! unique and free of spaces and commas, values possibly empty or binary.
//! Decoding is strict (bad base64, a bad key, or a repeated key is an error) so
//! that what the server stores is exactly what the client meant.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Decoded metadata in the order the client sent it.
pub type Metadata = Vec<(String, Vec<u8>)>;

/// Why an `Upload-Metadata` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata key is empty or contains a space, comma or non-ASCII character")]
    BadKey,
    #[error("metadata value for key {0:?} is not valid base64")]
    BadValue(String),
    #[error("metadata key {0:?} appears more than once")]
    DuplicateKey(String),
    #[error("metadata pair has more than a key and a value")]
    ExtraField,
}

/// Whether `key` may be an `Upload-Metadata` key: non-empty, printable
/// ASCII with no space or comma (the header's separators).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// The longest key asset metadata may have, in bytes (on creation and on
/// update alike).
pub const MAX_ASSET_KEY_LEN: usize = 128;

/// Whether `key` may be an asset metadata key: 1 to
/// [`MAX_ASSET_KEY_LEN`] bytes. Asset keys are wider than TUS keys (any
/// UTF-8); only those that are also [`is_valid_key`] travel as
/// `Upload-Metadata`.
pub fn is_valid_asset_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_ASSET_KEY_LEN
}

/// Decodes a header value. An empty or all-whitespace header is no metadata.
pub fn decode(header: &str) -> Result<Metadata, MetadataError> {
    let mut out: Metadata = Vec::new();
    if header.trim().is_empty() {
        return Ok(out);
    }
    for pair in header.split(',') {
        let mut fields = pair.trim().split(' ');
        let key = fields.next().unwrap_or_default();
        if !is_valid_key(key) {
            return Err(MetadataError::BadKey);
        }
        let value = match fields.next() {
            Some(v) => STANDARD
                .decode(v)
                .map_err(|_| MetadataError::BadValue(key.to_owned()))?,
            None => Vec::new(),
        };
        if fields.next().is_some() {
            return Err(MetadataError::ExtraField);
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(MetadataError::DuplicateKey(key.to_owned()));
        }
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// Encodes metadata as a header value; the inverse of [`decode`].
pub fn encode(metadata: &[(String, Vec<u8>)]) -> String {
    metadata
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k} {}", STANDARD.encode(v))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let md = decode("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential").unwrap();
        assert_eq!(
            md,
            vec![
                ("filename".into(), b"world_domination_plan.pdf".to_vec()),
                ("is_confidential".into(), vec![])
            ]
        );
        assert_eq!(decode(&encode(&md)).unwrap(), md);
        assert!(decode("").unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            decode("a Zm9v,a YmFy"),
            Err(MetadataError::DuplicateKey("a".into()))
        );
        assert_eq!(decode("a !!!"), Err(MetadataError::BadValue("a".into())));
        assert_eq!(decode(",a Zm9v"), Err(MetadataError::BadKey));
        assert_eq!(decode("a Zm9v extra"), Err(MetadataError::ExtraField));
        assert_eq!(decode("ключ Zm9v"), Err(MetadataError::BadKey));
    }
}
