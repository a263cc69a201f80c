//! HTTP to the providers: bearer auth, timeouts, and retries of transient
//! failures only.
//!
//! Transient means the provider did not do the work and may do it if asked
//! again: a refused connection, HTTP 429 (rate limit), 500/502/503/504, a
//! timeout. Each retry is logged with its cause and waits twice as long as
//! the one before; after the last one the error says how many were made.
//!
//! A create is not safe to repeat: a timeout or a 5xx may come after the
//! provider made the instance, and a second try would make a second one.
//! So for [`Call::Create`] only a refused connection and a 429 are retried;
//! anything else whose outcome is unclear becomes
//! [`CloudError::CreateOutcomeUnknown`], and the caller looks for the
//! instance by its label.

use std::time::Duration;

use reqwest::Method;

use super::{ApiKey, CloudError, ProviderKind, Timing};

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Reading, searching, destroying: repeating it changes nothing.
    Safe,
    /// Making an instance: repeating it could make two.
    Create,
}

/// A provider's answer: status and body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or `Unparseable` naming `what`.
    pub fn json(
        &self,
        provider: ProviderKind,
        what: &str,
    ) -> Result<serde_json::Value, CloudError> {
        serde_json::from_str(&self.body).map_err(|e| CloudError::Unparseable {
            provider,
            what: what.to_string(),
            reason: format!("not JSON ({e}): {}", snippet(&self.body)),
        })
    }
}

/// The first 200 characters of a body, on one line.
pub fn snippet(body: &str) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    match trimmed.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &trimmed[..at]),
        None if trimmed.is_empty() => "(empty body)".to_string(),
        None => trimmed.to_string(),
    }
}

/// A client for one provider, holding its key.
pub struct Http {
    client: reqwest::Client,
    provider: ProviderKind,
    key: ApiKey,
    retries: u32,
    base_delay: Duration,
}

/// What one attempt came to.
enum Attempt {
    Done(Answer),
    /// Worth another try; the cause in words.
    Transient(String),
}

impl Http {
    pub fn new(provider: ProviderKind, key: ApiKey, timing: &Timing) -> Result<Http, CloudError> {
        // reqwest is built without a TLS provider of its own: ring, once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(timing.request_timeout)
            .connect_timeout(timing.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("ategnatos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CloudError::Failed(format!("could not set up HTTPS: {e}")))?;
        Ok(Http {
            client,
            provider,
            key,
            retries: timing.retries,
            base_delay: timing.retry_base_delay,
        })
    }

    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    /// The key, for scrubbing quoted answers.
    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// Sends a request, retrying transient failures. 401 and 403 become
    /// `BadKey`; any other status comes back for the provider to read.
    /// `what` names the request in errors and logs ("the offer search").
    pub async fn send(
        &self,
        call: Call,
        what: &str,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, CloudError> {
        let mut attempt = 0u32;
        loop {
            let cause = match self.attempt(call, &method, url, body).await? {
                Attempt::Done(answer) => return Ok(answer),
                Attempt::Transient(cause) => self.key.scrub(&cause),
            };
            if attempt >= self.retries {
                return Err(CloudError::Unreachable {
                    provider: self.provider,
                    what: what.to_string(),
                    retries: self.retries,
                    cause,
                });
            }
            let wait = self.base_delay.saturating_mul(1 << attempt.min(16));
            attempt += 1;
            tracing::warn!(
                provider = self.provider.id(),
                "{what} failed ({cause}); retry {attempt} of {} in {:.1} s",
                self.retries,
                wait.as_secs_f64()
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(
        &self,
        call: Call,
        method: &Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Attempt, CloudError> {
        let mut request = self
            .client
            .request(method.clone(), url)
            .bearer_auth(self.key.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            request = request.json(b);
        }
        let unknown = |cause: String| CloudError::CreateOutcomeUnknown {
            provider: self.provider,
            cause: self.key.scrub(&cause),
        };
        let response = match request.send().await {
            Ok(r) => r,
            // Never reached the provider: safe to try again, even a create.
            Err(e) if e.is_connect() => return Ok(Attempt::Transient(causes(&e))),
            Err(e) if call == Call::Create => return Err(unknown(causes(&e))),
            Err(e) => return Ok(Attempt::Transient(causes(&e))),
        };
        let status = response.status().as_u16();
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if call == Call::Create => return Err(unknown(causes(&e))),
            Err(e) => return Ok(Attempt::Transient(causes(&e))),
        };
        match status {
            401 | 403 => Err(CloudError::BadKey {
                provider: self.provider,
                status,
            }),
            429 => Ok(Attempt::Transient(format!(
                "HTTP 429, too many requests: {}",
                snippet(&text)
            ))),
            500 | 502 | 503 | 504 if call == Call::Create => {
                Err(unknown(format!("HTTP {status}: {}", snippet(&text))))
            }
            500 | 502 | 503 | 504 => Ok(Attempt::Transient(format!(
                "HTTP {status}: {}",
                snippet(&text)
            ))),
            _ => Ok(Attempt::Done(Answer { status, body: text })),
        }
    }
}

/// An error and its causes, one after the other.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(snippet("  {\"a\":\n1}  "), "{\"a\": 1}");
        assert_eq!(snippet(""), "(empty body)");
        let long = "x".repeat(500);
        assert_eq!(snippet(&long).chars().count(), 201);
    }
}
