//! Signed upload URLs. The upload API hands a recorder a URL that carries its
//! own authorisation: `?sig=v1.<kid>.<exp>.<mac>`, where `mac` is
//! base64url(HMAC-SHA256(key[kid], "v1|tus|<upload_id>|<exp>")). The MAC binds
//! the token to one upload id, so it is worthless for any other upload; the key
//! id lets the server rotate keys; `exp` (Unix seconds) bounds how long an
//! unused URL stays good. Verification is constant-time.

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
    #[error("upload signature is malformed")]
    Malformed,
    #[error("upload signature was made with an unknown key")]
    UnknownKey,
    #[error("upload signature does not match this upload")]
    BadMac,
}

/// A parsed, not yet verified, token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
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

fn mac_for(secret: &[u8], upload_id: &str, exp: u64) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("v1|tus|{upload_id}|{exp}").as_bytes());
    mac
}

/// Signs `upload_id` until `exp`; returns the token for [`QUERY_PARAM`].
pub fn sign(kid: &str, secret: &[u8], upload_id: &str, exp: u64) -> String {
    debug_assert!(kid_is_valid(kid));
    let mac = mac_for(secret, upload_id, exp).finalize().into_bytes();
    format!("v1.{kid}.{exp}.{}", URL_SAFE_NO_PAD.encode(mac))
}

impl Token {
    /// Parses `v1.<kid>.<exp>.<mac>`.
    pub fn parse(token: &str) -> Result<Token, TokenError> {
        let mut parts = token.split('.');
        let (Some("v1"), Some(kid), Some(exp), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenError::Malformed);
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
            kid: kid.to_owned(),
            exp,
            mac,
        })
    }

    /// Checks the MAC for `upload_id` with the key this token names. Expiry is
    /// the caller's policy (see the server's upload rules), not checked here.
    pub fn verify(&self, secret: &[u8], upload_id: &str) -> Result<(), TokenError> {
        mac_for(secret, upload_id, self.exp)
            .verify_slice(&self.mac)
            .map_err(|_| TokenError::BadMac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let t = sign("k1", b"secret", "abc", 1_700_000_000);
        let parsed = Token::parse(&t).unwrap();
        assert_eq!(parsed.kid, "k1");
        assert_eq!(parsed.exp, 1_700_000_000);
        parsed.verify(b"secret", "abc").unwrap();
        assert_eq!(parsed.verify(b"secret", "abd"), Err(TokenError::BadMac));
        assert_eq!(parsed.verify(b"other", "abc"), Err(TokenError::BadMac));
    }

    #[test]
    fn tampered_expiry_fails() {
        let t = sign("k1", b"secret", "abc", 100);
        let forged = t.replacen(".100.", ".999999.", 1);
        assert_eq!(
            Token::parse(&forged).unwrap().verify(b"secret", "abc"),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn malformed_tokens() {
        for bad in [
            "",
            "v1",
            "v2.k.1.AAAA",
            "v1.k.x.AAAA",
            "v1.k.1.!!",
            "v1.k.1.AAAA",
            "v1.k k.1.AAAA",
            "v1.k.1.a.b",
        ] {
            assert_eq!(Token::parse(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }
}
