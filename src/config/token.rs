//! The admin token (`PKGSTASH_TOKEN`, from `/etc/pkgstash/pkgstash.env`): held apart from the
//! file's keys, compared in constant time, and never printed.

use std::fmt;

/// The admin token. Never printed: `Debug` redacts it and there is no `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wrap a token value (e.g. from `PKGSTASH_TOKEN`).
    pub fn new(value: String) -> Token {
        Token(value)
    }

    /// The token of an environment's `PKGSTASH_TOKEN`, trimmed; `None` when unset or blank
    /// (the admin API is then disabled).
    pub(super) fn from_env(env: &std::collections::HashMap<String, String>) -> Option<Token> {
        env.get("PKGSTASH_TOKEN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Token)
    }

    /// The value, for sending it in an `Authorization` header (client commands only).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let a = self.0.as_bytes();
        let b = presented.as_bytes();
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
