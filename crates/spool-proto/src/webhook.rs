//! Webhook signatures in the Standard Webhooks format: a delivery carries
//! `webhook-id` (constant across retries), `webhook-timestamp` (Unix seconds of
//! this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<id>.<timestamp>.<body>`, keyed by the base64 part of a `whsec_` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";
const PREFIX: &str = "whsec_";

/// Why a webhook secret or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook secret must be 'whsec_' followed by base64 of 24 to 64 random bytes")]
    BadSecret,
    #[error("no webhook signature matches")]
    NoMatch,
}

/// A webhook signing secret.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`; the key must be 24 to 64 bytes.
    pub fn parse(secret: &str) -> Result<Self, WebhookError> {
        let b64 = secret.strip_prefix(PREFIX).ok_or(WebhookError::BadSecret)?;
        let key = STANDARD.decode(b64).map_err(|_| WebhookError::BadSecret)?;
        if !(24..=64).contains(&key.len()) {
            return Err(WebhookError::BadSecret);
        }
        Ok(WebhookSecret(key))
    }

    /// Formats a key as a `whsec_` secret.
    pub fn format(key: &[u8]) -> String {
        format!("{PREFIX}{}", STANDARD.encode(key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value for one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        format!(
            "v1,{}",
            STANDARD.encode(self.mac(id, timestamp, body).finalize().into_bytes())
        )
    }

    /// Checks a `webhook-signature` header (space-separated `v1,<sig>` entries).
    pub fn verify(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
        header: &str,
    ) -> Result<(), WebhookError> {
        for entry in header.split_ascii_whitespace() {
            let Some(sig) = entry.strip_prefix("v1,") else {
                continue;
            };
            let Ok(sig) = STANDARD.decode(sig) else {
                continue;
            };
            if self.mac(id, timestamp, body).verify_slice(&sig).is_ok() {
                return Ok(());
            }
        }
        Err(WebhookError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification's test suite.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        secret
            .verify(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#,
                &format!("v1,bad {sig}"),
            )
            .unwrap();
        assert!(secret.verify("msg_other", 1614265330, b"{}", &sig).is_err());
    }

    #[test]
    fn secrets_are_checked() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(
            format!(
                "{:?}",
                WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
            )
            .contains("redacted")
        );
    }
}
