//! Unguessable identifiers and secrets, from the operating system's CSPRNG.
//! Upload and asset ids are 128 random bits in lowercase hex; an id from a
//! request is only ever used after [`is_valid_id`] accepted it.

use rand::RngCore;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// A new upload or asset id.
pub fn new_id() -> String {
    random_hex(16)
}

/// Whether `s` has the shape of an id this server issues (32 lowercase hex).
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `s` is a node name as [`crate::app`] makes them (`n` and hex).
pub fn is_valid_node(s: &str) -> bool {
    s.len() > 1
        && s.len() <= 32
        && s.starts_with('n')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_and_distinct() {
        let a = new_id();
        assert!(is_valid_id(&a));
        assert_ne!(a, new_id());
        for bad in [
            "",
            "../../etc/passwd",
            &a.to_uppercase(),
            &format!("{a}0"),
            "0123456789abcdef0123456789abcde/",
        ] {
            assert!(!is_valid_id(bad), "{bad:?}");
        }
    }
}
