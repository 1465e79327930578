//! API secrets from a file. A secret on the command line is visible to
//! every user of the machine (`ps`, /proc) and lands in shell history, so
//! the documented ways are `--token-secret-file PATH` and the environment;
//! `--token-secret` still works but is never suggested. The file holds the
//! secret alone, or `id:secret` as `spool serve` writes its credentials file
//! (so `--token-secret-file .spool/data/credentials` works as it is).

use std::path::Path;

use anyhow::{Context as _, bail};

/// The token id and secret from `id`, `secret` and `file`, whichever were
/// given; a file's id, if it holds one, must agree with `id`.
pub fn resolve(
    id: Option<String>,
    secret: Option<String>,
    file: Option<&Path>,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    // An empty id or secret (`SPOOL_TOKEN_SECRET=` in a script) would
    // authenticate with an empty key: refused, not sent.
    if id.as_deref().is_some_and(str::is_empty) {
        bail!("the token id is empty (--token-id or SPOOL_TOKEN_ID)");
    }
    let Some(path) = file else {
        if secret.as_deref().is_some_and(str::is_empty) {
            bail!("the token secret is empty (--token-secret or SPOOL_TOKEN_SECRET)");
        }
        return Ok((id, secret));
    };
    if secret.is_some() {
        bail!(
            "give the token secret once: --token-secret-file or --token-secret (SPOOL_TOKEN_SECRET), not both"
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token secret from {}", path.display()))?;
    let text = text.trim();
    let (file_id, file_secret) = match text.split_once(':') {
        Some((i, s)) => (Some(i.to_owned()), s.to_owned()),
        None => (None, text.to_owned()),
    };
    if file_secret.is_empty() {
        bail!("{} holds no token secret", path.display());
    }
    let id = match (id, file_id) {
        (Some(a), Some(b)) if a != b => bail!(
            "{} holds credentials for token id {b:?}, not {a:?}",
            path.display()
        ),
        (a, b) => a.or(b),
    };
    Ok((id, Some(file_secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_credentials_are_refused() {
        assert!(resolve(Some("id".into()), Some(String::new()), None).is_err());
        assert!(resolve(Some(String::new()), Some("s".into()), None).is_err());
        assert_eq!(
            resolve(None, None, None).unwrap(),
            (None, None),
            "nothing given is not an error"
        );
    }

    #[test]
    fn secret_alone_or_with_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "hunter2\n").unwrap();
        let got = resolve(Some("id".into()), None, Some(&p)).unwrap();
        assert_eq!(got, (Some("id".into()), Some("hunter2".into())));
        std::fs::write(&p, "spool_ab:cafe\n").unwrap();
        let got = resolve(None, None, Some(&p)).unwrap();
        assert_eq!(got, (Some("spool_ab".into()), Some("cafe".into())));
        assert!(resolve(Some("other".into()), None, Some(&p)).is_err());
        assert!(resolve(None, Some("x".into()), Some(&p)).is_err());
        std::fs::write(&p, "\n").unwrap();
        assert!(resolve(None, None, Some(&p)).is_err());
        assert!(resolve(None, None, Some(&dir.path().join("missing"))).is_err());
        assert_eq!(
            resolve(Some("a".into()), Some("b".into()), None).unwrap(),
            (Some("a".into()), Some("b".into()))
        );
    }
}
