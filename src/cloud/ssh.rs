//! Is the instance's SSH server up? A TCP connect and the server's
//! identification line (`SSH-2.0-…`, RFC 4253 §4.2), which every SSH server
//! sends first, before any key is asked for. It proves the machine is
//! reachable and sshd answers; logging in with the artist's key is the
//! remote run's business.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::provider::SshEndpoint;

/// The server's identification line, or why there is none.
pub async fn banner(endpoint: &SshEndpoint, timeout: Duration) -> Result<String, String> {
    let address = format!("{}:{}", endpoint.host, endpoint.port);
    let read = async {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to `{address}`: {e}"))?;
        let mut line = Vec::with_capacity(64);
        let mut byte = [0u8; 1];
        // The line is at most 255 bytes, ending in CR LF.
        while line.len() < 255 {
            let n = stream
                .read(&mut byte)
                .await
                .map_err(|e| format!("`{address}` closed the connection: {e}"))?;
            if n == 0 || byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        if text.starts_with("SSH-") {
            Ok(text)
        } else if text.is_empty() {
            Err(format!(
                "`{address}` accepted the connection but said nothing"
            ))
        } else {
            Err(format!(
                "`{address}` is not an SSH server (it said `{text}`)"
            ))
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(format!("`{address}` did not answer within {timeout:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn server(says: &'static [u8]) -> SshEndpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(says).await;
            }
        });
        SshEndpoint {
            host: "127.0.0.1".into(),
            port,
            user: "root".into(),
        }
    }

    #[tokio::test]
    async fn an_ssh_server_is_recognised_by_its_first_line() {
        let ep = server(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3\r\n").await;
        assert_eq!(
            banner(&ep, Duration::from_secs(10)).await.unwrap(),
            "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3"
        );
        let web = server(b"HTTP/1.1 400 Bad Request\r\n").await;
        let err = banner(&web, Duration::from_secs(10)).await.unwrap_err();
        assert!(err.contains("not an SSH server"), "{err}");
    }
}
