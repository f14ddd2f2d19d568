//! Detached package and db signatures of a custom repo: an uploaded signature is checked to be
//! a binary OpenPGP signature packet (RFC 4880 §4.2, tag 2); with `sign_key` set, pkgstash signs
//! with `gpg --detach-sign` itself.

use std::path::Path;
use std::process::Command;

use super::CustomRepoError;

/// Largest detached signature accepted, bytes.
const MAX_SIGNATURE: usize = 16 << 10;

/// A detached signature must be a binary OpenPGP signature packet (what `gpg --detach-sign`
/// and makepkg write), not armored text or anything else.
pub(super) fn check_signature(sig: Vec<u8>) -> Result<Vec<u8>, CustomRepoError> {
    if sig.is_empty() || sig.len() > MAX_SIGNATURE {
        return Err(CustomRepoError::BadSignature(format!(
            "{} bytes is not a detached signature",
            sig.len()
        )));
    }
    // Old-format packet tag 2 (0x88..0x8b) or new-format tag 2 (0xc2).
    let tag_ok = matches!(sig[0], 0x88..=0x8b | 0xc2);
    if !tag_ok {
        return Err(CustomRepoError::BadSignature(
            "not a binary OpenPGP signature (use `gpg --detach-sign`, not --armor)".into(),
        ));
    }
    Ok(sig)
}

/// `gpg --detach-sign` with `key`; returns the signature bytes.
pub(super) fn gpg_sign(repo: &str, key: &str, file: &Path) -> Result<Vec<u8>, CustomRepoError> {
    let out = Command::new("gpg")
        .args([
            "--batch",
            "--yes",
            "--no-tty",
            "--detach-sign",
            "--local-user",
            key,
            "--output",
            "-",
        ])
        .arg(file)
        .output()
        .map_err(|e| CustomRepoError::Sign {
            repo: repo.to_string(),
            why: format!("cannot run gpg: {e}"),
        })?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(CustomRepoError::Sign {
            repo: repo.to_string(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}
