//! ComfyUI's `/ws?clientId=…` events: which node runs, sampler steps,
//! outputs, the end of a prompt.
//!
//! Text frames are `{"type": …, "data": {…}}`; binary frames are previews
//! (and node text) that we skip. Unknown types are ignored, as the protocol
//! grows (`progress_state`, asset events upstream).

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::{ComfyError, ServerUrl};

/// One event we act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The queue changed.
    Status {
        queue_remaining: Option<u64>,
    },
    ExecutionStart {
        prompt_id: String,
    },
    /// Nodes skipped because their result was cached.
    Cached {
        prompt_id: String,
        nodes: Vec<String>,
    },
    /// A node started; `node: None` with our prompt id means the prompt is
    /// over. After a reconnect the server may leave out the prompt id.
    Executing {
        prompt_id: Option<String>,
        node: Option<String>,
    },
    /// A step of a node (sampler steps).
    Progress {
        prompt_id: Option<String>,
        node: Option<String>,
        value: u64,
        max: u64,
    },
    /// An output node finished with these outputs.
    Executed {
        prompt_id: String,
        node: String,
        output: Value,
    },
    Success {
        prompt_id: String,
    },
    Error {
        prompt_id: String,
        data: Value,
    },
    Interrupted {
        prompt_id: String,
    },
    /// Anything else (binary previews, `progress_state`, new types).
    Other,
}

fn text(data: &Value, key: &str) -> Option<String> {
    data.get(key).and_then(Value::as_str).map(String::from)
}

/// Reads one text frame.
pub fn parse(frame: &str) -> Event {
    let Ok(v) = serde_json::from_str::<Value>(frame) else {
        return Event::Other;
    };
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    let pid = || text(&data, "prompt_id").unwrap_or_default();
    match v.get("type").and_then(Value::as_str).unwrap_or("") {
        "status" => Event::Status {
            queue_remaining: data
                .pointer("/status/exec_info/queue_remaining")
                .and_then(Value::as_u64),
        },
        "execution_start" => Event::ExecutionStart { prompt_id: pid() },
        "execution_cached" => Event::Cached {
            prompt_id: pid(),
            nodes: data
                .get("nodes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "executing" => Event::Executing {
            prompt_id: text(&data, "prompt_id"),
            node: text(&data, "node"),
        },
        "progress" => Event::Progress {
            prompt_id: text(&data, "prompt_id"),
            node: text(&data, "node"),
            value: data.get("value").and_then(Value::as_u64).unwrap_or(0),
            max: data.get("max").and_then(Value::as_u64).unwrap_or(0),
        },
        "executed" => Event::Executed {
            prompt_id: pid(),
            node: text(&data, "node").unwrap_or_default(),
            output: data.get("output").cloned().unwrap_or(Value::Null),
        },
        "execution_success" => Event::Success { prompt_id: pid() },
        "execution_error" => Event::Error {
            prompt_id: pid(),
            data,
        },
        "execution_interrupted" => Event::Interrupted { prompt_id: pid() },
        _ => Event::Other,
    }
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An open event socket for one client id.
pub struct Socket {
    stream: Stream,
}

impl Socket {
    /// Opens `/ws?clientId=…` (no `Origin` header is sent).
    pub async fn connect(base: &ServerUrl, client_id: &str) -> Result<Socket, ComfyError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = base.socket(client_id);
        let connect = tokio_tungstenite::connect_async(url.as_str());
        match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
            Ok(Ok((stream, _))) => Ok(Socket { stream }),
            Ok(Err(e)) => Err(ComfyError::Unreachable {
                url: base.to_string(),
                reason: format!("its event socket `/ws` would not open: {e}"),
            }),
            Err(_) => Err(ComfyError::Unreachable {
                url: base.to_string(),
                reason: "its event socket `/ws` did not open within 10 s".into(),
            }),
        }
    }

    /// The next event; `None` once the socket is closed or broken.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            match self.stream.next().await? {
                Ok(Message::Text(t)) => return Some(parse(t.as_str())),
                Ok(Message::Close(_)) | Err(_) => return None,
                // Binary previews, pings (answered by tungstenite), pongs.
                Ok(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_frames_are_read() {
        let pid = "f5d9c199-eb42-42c3-938e-ade8750bef0e";
        assert_eq!(
            parse(
                r#"{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}"#
            ),
            Event::Status {
                queue_remaining: Some(1)
            }
        );
        assert_eq!(
            parse(&format!(
                r#"{{"type": "execution_cached", "data": {{"nodes": ["1", "2", "3"], "prompt_id": "{pid}", "timestamp": 1}}}}"#
            )),
            Event::Cached {
                prompt_id: pid.into(),
                nodes: vec!["1".into(), "2".into(), "3".into()]
            }
        );
        assert_eq!(
            parse(&format!(
                r#"{{"type": "executing", "data": {{"node": null, "prompt_id": "{pid}"}}}}"#
            )),
            Event::Executing {
                prompt_id: Some(pid.into()),
                node: None
            }
        );
        // After a reconnect the server re-sends the running node without a prompt id.
        assert_eq!(
            parse(r#"{"type": "executing", "data": {"node": "2"}}"#),
            Event::Executing {
                prompt_id: None,
                node: Some("2".into())
            }
        );
        assert!(matches!(
            parse(
                r#"{"type": "progress", "data": {"value": 3, "max": 25, "prompt_id": "p", "node": "3"}}"#
            ),
            Event::Progress {
                value: 3,
                max: 25,
                ..
            }
        ));
        assert_eq!(
            parse(r#"{"type": "progress_state", "data": {}}"#),
            Event::Other
        );
        assert_eq!(parse("not json"), Event::Other);
    }
}
