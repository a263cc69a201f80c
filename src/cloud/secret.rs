//! Provider API keys as a type that cannot be printed.
//!
//! [`ApiKey`] holds the key a provider needs; its `Debug` and `Display`
//! print `****`, so a key that ends up in a log line, an error, a result or
//! a state file shows as stars. The only way to the text is
//! [`ApiKey::expose`], called where the `Authorization` header is built.
//! Keys come from the environment (`VAST_API_KEY`, `RUNPOD_API_KEY`) and
//! nowhere else: no tool argument, config file or state file holds one.

use std::fmt;

/// A provider API key whose `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key. The binary only builds these from the environment
    /// ([`ApiKey::from_env`]); tests build them for mock providers.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key in `var`, when it is set and not blank.
    pub fn from_env(var: &str) -> Option<ApiKey> {
        std::env::var(var)
            .ok()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .map(ApiKey)
    }

    /// The key itself, for the `Authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `****`: for
    /// provider answers quoted in errors, in case one echoes the key back.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_string();
        }
        text.replace(&self.0, "****")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_a_key_shows_stars() {
        let key = ApiKey::new("vast-secret-0123456789");
        let shown = format!("{key} {key:?} {:?}", Some(&key));
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(shown, "**** ApiKey(****) Some(ApiKey(****))");
        assert_eq!(key.expose(), "vast-secret-0123456789");
    }

    #[test]
    fn scrub_removes_an_echoed_key() {
        let key = ApiKey::new("abcd1234");
        assert_eq!(
            key.scrub("{\"error\":\"bad key abcd1234\"}"),
            "{\"error\":\"bad key ****\"}"
        );
    }
}
