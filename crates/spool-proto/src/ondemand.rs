//! The answer of `POST /v1/on-demand`, the endpoint a backend calls to get
//! a signed upload URL for a new asset: one type that the server serializes
//! and a client deserializes, so both read the same fields. Fields are
//! declared in alphabetical order, which is also the order they take on the
//! wire.

use serde::{Deserialize, Serialize};

/// The JSON body of a `201 Created` from `POST /v1/on-demand`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnDemandResponse {
    /// The new asset's id.
    pub asset_id: String,
    /// When `upload_url` stops working if unused, RFC 3339 in UTC to the
    /// second (`2026-01-01T00:00:00Z`).
    pub expires_at: String,
    /// The upload's own size limit, when the request set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Where anyone with the link watches the asset.
    pub share_url: String,
    /// The absolute, signed TUS upload URL of the asset's upload.
    pub upload_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_omits_an_absent_limit() {
        let r = OnDemandResponse {
            asset_id: "a1".into(),
            expires_at: "2026-01-01T00:00:00Z".into(),
            max_size: None,
            share_url: "http://h/v/a1".into(),
            upload_url: "http://h/v1/uploads/u1?sig=x".into(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"asset_id":"a1","expires_at":"2026-01-01T00:00:00Z","share_url":"http://h/v/a1","upload_url":"http://h/v1/uploads/u1?sig=x"}"#
        );
        assert_eq!(serde_json::from_str::<OnDemandResponse>(&json).unwrap(), r);
        let limited = OnDemandResponse {
            max_size: Some(5),
            ..r
        };
        let json = serde_json::to_string(&limited).unwrap();
        assert!(json.contains(r#""max_size":5"#), "{json}");
        assert_eq!(
            serde_json::from_str::<OnDemandResponse>(&json).unwrap(),
            limited
        );
    }
}
