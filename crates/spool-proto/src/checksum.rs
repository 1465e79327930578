//! The checksum extension's algorithms: their names on the wire, the
//! `Upload-Checksum` header (`<algorithm> <base64 digest>`) and its strict
//! parser, and a [`Hasher`] per algorithm, so the client that sends a
//! checksum and the server that verifies it hash the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest as _;

/// A checksum algorithm of the checksum extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    /// Parses a wire name (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(ChecksumAlgorithm::Sha1),
            "sha256" => Some(ChecksumAlgorithm::Sha256),
            _ => None,
        }
    }
}

/// A parsed `Upload-Checksum` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

impl Checksum {
    /// The header value, `<algorithm> <base64 digest>`.
    pub fn to_header(&self) -> String {
        format!(
            "{} {}",
            self.algorithm.as_str(),
            STANDARD.encode(&self.digest)
        )
    }
}

/// Why an `Upload-Checksum` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("unsupported checksum algorithm (supported: sha1, sha256)")]
    UnknownAlgorithm,
    #[error("malformed Upload-Checksum: expected '<algorithm> <base64 digest>'")]
    Malformed,
}

/// Parses `Upload-Checksum: <algorithm> <base64>`, checking the digest length.
pub fn parse_checksum(value: &str) -> Result<Checksum, ChecksumError> {
    let (name, digest) = value
        .trim()
        .split_once(' ')
        .ok_or(ChecksumError::Malformed)?;
    let algorithm = ChecksumAlgorithm::parse(name).ok_or(ChecksumError::UnknownAlgorithm)?;
    let digest = STANDARD
        .decode(digest.trim())
        .map_err(|_| ChecksumError::Malformed)?;
    if digest.len() != algorithm.digest_len() {
        return Err(ChecksumError::Malformed);
    }
    Ok(Checksum { algorithm, digest })
}

/// A running digest of one of the [`ChecksumAlgorithm`]s.
#[derive(Clone)]
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The digest of everything given to [`Hasher::update`].
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self {
            Hasher::Sha1(_) => ChecksumAlgorithm::Sha1,
            Hasher::Sha256(_) => ChecksumAlgorithm::Sha256,
        };
        f.debug_tuple("Hasher").field(&alg.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_header() {
        let c = parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.to_header(), "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(
            parse_checksum("md5 1B2M2Y8AsgTpgAmY7PhCfg=="),
            Err(ChecksumError::UnknownAlgorithm)
        );
        assert_eq!(
            parse_checksum("sha256 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Err(ChecksumError::Malformed)
        );
        assert_eq!(parse_checksum("sha1"), Err(ChecksumError::Malformed));
        assert_eq!(parse_checksum("sha1 !!!"), Err(ChecksumError::Malformed));
    }

    #[test]
    fn hashers_match_the_known_digests() {
        // "abc" (FIPS 180 test vectors).
        for (alg, hex) in [
            (
                ChecksumAlgorithm::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                ChecksumAlgorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ] {
            let mut h = Hasher::new(alg);
            h.update(b"a");
            h.update(b"bc");
            let digest = h.finish();
            assert_eq!(digest.len(), alg.digest_len());
            let got: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "{}", alg.as_str());
        }
    }
}
