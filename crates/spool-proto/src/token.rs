//! Signed URLs. The upload API hands a recorder a URL that carries its own
//! authorisation: `?sig=v2.<kid>.<exp>.<mac>`, where `mac` is
//! base64url(HMAC-SHA256(key[kid], "v2|<purpose>|<resource_id>|<exp>")). The
//! MAC binds the token to one resource id *and* one [`Purpose`], so an upload
//! URL is worthless for any other upload and no URL signed for another
//! purpose (e.g. media) can be replayed as an upload URL; the key id lets the
//! server rotate keys; `exp` (Unix seconds) bounds how long an unused URL
//! stays good. `v1` tokens (`"v1|tus|<upload_id>|<exp>"`, no purpose of their
//! own) are still parsed so that URLs handed out before v2 keep working for
//! the uploads they were made for; nothing signs them any more.
//! Verification is constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The query parameter that carries the token.
pub const QUERY_PARAM: &str = "sig";

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused. The messages never echo the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the signature is malformed")]
    Malformed,
    #[error("the signature was made with an unknown key")]
    UnknownKey,
    #[error("the signature does not match this resource and purpose")]
    BadMac,
}

/// What a signed URL may be used for; part of the signed string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The upload protocol on one upload resource (HEAD, PATCH, OPTIONS,
    /// and DELETE while unfinished).
    Upload,
    /// Reading one asset's media (reserved for signed playback URLs).
    Media,
}

impl Purpose {
    /// The word in the signed string.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Upload => "upload",
            Purpose::Media => "media",
        }
    }
}

/// The token format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `v1|tus|…`: upload URLs only, issued before purposes existed.
    V1,
    /// `v2|<purpose>|…`.
    V2,
}

/// A parsed, not yet verified, token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub version: Version,
    pub kid: String,
    pub exp: u64,
    mac: Vec<u8>,
}

fn kid_is_valid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The exact string a token's MAC covers. `None` for a combination that
/// was never signed (a v1 token only ever meant the upload protocol).
fn signed_string(version: Version, purpose: Purpose, id: &str, exp: u64) -> Option<String> {
    match (version, purpose) {
        (Version::V1, Purpose::Upload) => Some(format!("v1|tus|{id}|{exp}")),
        (Version::V1, _) => None,
        (Version::V2, p) => Some(format!("v2|{}|{id}|{exp}", p.as_str())),
    }
}

fn mac_over(secret: &[u8], text: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(text.as_bytes());
    mac
}

/// Signs `resource_id` for `purpose` until `exp` (a v2 token); returns the
/// value for [`QUERY_PARAM`].
pub fn sign(kid: &str, secret: &[u8], purpose: Purpose, resource_id: &str, exp: u64) -> String {
    debug_assert!(kid_is_valid(kid));
    let text = signed_string(Version::V2, purpose, resource_id, exp)
        .unwrap_or_else(|| unreachable!("every purpose has a v2 form"));
    let mac = mac_over(secret, &text).finalize().into_bytes();
    format!("v2.{kid}.{exp}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// A v1 token, as servers before v2 issued them. Only for tests of the
/// transition: nothing in Spool signs v1 any more.
pub fn sign_v1(kid: &str, secret: &[u8], upload_id: &str, exp: u64) -> String {
    let mac = mac_over(secret, &format!("v1|tus|{upload_id}|{exp}"))
        .finalize()
        .into_bytes();
    format!("v1.{kid}.{exp}.{}", URL_SAFE_NO_PAD.encode(mac))
}

impl Token {
    /// Parses `v1.<kid>.<exp>.<mac>` or `v2.<kid>.<exp>.<mac>`.
    pub fn parse(token: &str) -> Result<Token, TokenError> {
        let mut parts = token.split('.');
        let (Some(v), Some(kid), Some(exp), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let version = match v {
            "v1" => Version::V1,
            "v2" => Version::V2,
            _ => return Err(TokenError::Malformed),
        };
        if !kid_is_valid(kid) {
            return Err(TokenError::Malformed);
        }
        let exp = crate::tus::parse_u64(exp).map_err(|_| TokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| TokenError::Malformed)?;
        if mac.len() != 32 {
            return Err(TokenError::Malformed);
        }
        Ok(Token {
            version,
            kid: kid.to_owned(),
            exp,
            mac,
        })
    }

    /// Checks the MAC for `resource_id` and `purpose` with the key this
    /// token names. Expiry is the caller's policy (see the server's upload
    /// rules), not checked here.
    pub fn verify(
        &self,
        secret: &[u8],
        purpose: Purpose,
        resource_id: &str,
    ) -> Result<(), TokenError> {
        let text = signed_string(self.version, purpose, resource_id, self.exp)
            .ok_or(TokenError::BadMac)?;
        mac_over(secret, &text)
            .verify_slice(&self.mac)
            .map_err(|_| TokenError::BadMac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let t = sign("k1", b"secret", Purpose::Upload, "abc", 1_700_000_000);
        assert!(t.starts_with("v2.k1.1700000000."));
        let parsed = Token::parse(&t).unwrap();
        assert_eq!(parsed.kid, "k1");
        assert_eq!(parsed.exp, 1_700_000_000);
        assert_eq!(parsed.version, Version::V2);
        parsed.verify(b"secret", Purpose::Upload, "abc").unwrap();
        let bad = |p, id: &str, key: &[u8]| parsed.verify(key, p, id);
        assert_eq!(
            bad(Purpose::Upload, "abd", b"secret"),
            Err(TokenError::BadMac)
        );
        assert_eq!(
            bad(Purpose::Upload, "abc", b"other"),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn a_token_for_one_purpose_is_refused_for_another() {
        let media = sign("k1", b"secret", Purpose::Media, "abc", 100);
        let t = Token::parse(&media).unwrap();
        t.verify(b"secret", Purpose::Media, "abc").unwrap();
        assert_eq!(
            t.verify(b"secret", Purpose::Upload, "abc"),
            Err(TokenError::BadMac)
        );
        let upload = Token::parse(&sign("k1", b"secret", Purpose::Upload, "abc", 100)).unwrap();
        assert_eq!(
            upload.verify(b"secret", Purpose::Media, "abc"),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn v1_tokens_verify_for_uploads_only() {
        let t = Token::parse(&sign_v1("k1", b"secret", "abc", 100)).unwrap();
        assert_eq!(t.version, Version::V1);
        t.verify(b"secret", Purpose::Upload, "abc").unwrap();
        assert_eq!(
            t.verify(b"secret", Purpose::Media, "abc"),
            Err(TokenError::BadMac)
        );
        // A v1 MAC relabelled as v2 does not verify: the version is signed.
        let relabelled = sign_v1("k1", b"secret", "abc", 100).replacen("v1.", "v2.", 1);
        assert_eq!(
            Token::parse(&relabelled)
                .unwrap()
                .verify(b"secret", Purpose::Upload, "abc"),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn tampered_expiry_fails() {
        let t = sign("k1", b"secret", Purpose::Upload, "abc", 100);
        let forged = t.replacen(".100.", ".999999.", 1);
        assert_eq!(
            Token::parse(&forged)
                .unwrap()
                .verify(b"secret", Purpose::Upload, "abc"),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn malformed_tokens() {
        for bad in [
            "",
            "v1",
            "v3.k.1.AAAA",
            "v2.k.x.AAAA",
            "v1.k.1.!!",
            "v2.k.1.AAAA",
            "v1.k k.1.AAAA",
            "v1.k.1.a.b",
        ] {
            assert_eq!(Token::parse(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }
}
