//! Reaching an instance over SSH.
//!
//! [`banner`]: is its SSH server up? A TCP connect and the server's
//! identification line (`SSH-2.0-…`, RFC 4253 §4.2), which every SSH server
//! sends first, before any key is asked for.
//!
//! [`Ssh`]: commands and file transfers with the artist's own key, through
//! the system's `ssh` and `rsync` (the programs the artist already trusts
//! and configures; no key passes through us). Each instance has its own
//! known-hosts file: its host key is accepted at first contact and held
//! from then on, and a new instance that reuses an address does not trip
//! over the old one's key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::provider::SshEndpoint;
use crate::backends::shell_quote;

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

/// The SSH client program: `ATEGNATOS_SSH`, else `ssh` on PATH.
pub const SSH_VAR: &str = "ATEGNATOS_SSH";
/// The rsync program: `ATEGNATOS_RSYNC`, else `rsync` on PATH.
pub const RSYNC_VAR: &str = "ATEGNATOS_RSYNC";
/// The private key to log in with: `ATEGNATOS_SSH_KEY`, else ssh's own
/// choice (the agent, `~/.ssh/id_*`, `~/.ssh/config`).
pub const KEY_VAR: &str = "ATEGNATOS_SSH_KEY";

/// What went wrong talking to an instance.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShellError {
    #[error("`{program}` could not be started: {cause}")]
    Missing { program: String, cause: String },
    /// ssh's own failure (exit status 255): no connection, a dropped one,
    /// or the key refused. Worth trying again.
    #[error("the connection to `{target}` failed or dropped: {said}")]
    Connection { target: String, said: String },
}

/// A finished remote command.
#[derive(Debug, Clone)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// The last lines it printed (standard output, else standard error).
    pub fn said(&self, lines: usize) -> String {
        let text = if self.stdout.trim().is_empty() {
            &self.stderr
        } else {
            &self.stdout
        };
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The programs and key that reach instances.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub program: PathBuf,
    pub rsync: PathBuf,
    /// `-i`: the key, when the artist named one.
    pub key: Option<PathBuf>,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            program: PathBuf::from("ssh"),
            rsync: PathBuf::from("rsync"),
            key: None,
        }
    }
}

impl SshSettings {
    /// [`SSH_VAR`], [`RSYNC_VAR`] and [`KEY_VAR`] where set.
    pub fn from_env() -> SshSettings {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let d = SshSettings::default();
        SshSettings {
            program: var(SSH_VAR).unwrap_or(d.program),
            rsync: var(RSYNC_VAR).unwrap_or(d.rsync),
            key: var(KEY_VAR),
        }
    }
}

/// How to reach one instance.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub endpoint: SshEndpoint,
    pub key: Option<PathBuf>,
    /// This instance's known hosts.
    pub known_hosts: PathBuf,
    pub program: PathBuf,
    pub rsync: PathBuf,
    pub connect_timeout: Duration,
}

impl Ssh {
    pub fn new(
        endpoint: SshEndpoint,
        known_hosts: PathBuf,
        settings: &SshSettings,
        connect_timeout: Duration,
    ) -> Ssh {
        Ssh {
            endpoint,
            key: settings.key.clone(),
            known_hosts,
            program: settings.program.clone(),
            rsync: settings.rsync.clone(),
            connect_timeout,
        }
    }

    /// `user@host`.
    pub fn target(&self) -> String {
        format!("{}@{}", self.endpoint.user, self.endpoint.host)
    }

    /// The options every connection takes.
    fn options(&self) -> Vec<String> {
        let mut o = vec![
            "-p".to_string(),
            self.endpoint.port.to_string(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=accept-new".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)),
            "-o".into(),
            "ServerAliveInterval=15".into(),
            "-o".into(),
            "ServerAliveCountMax=4".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ];
        if let Some(key) = &self.key {
            o.extend([
                "-i".to_string(),
                key.display().to_string(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        o
    }

    /// Runs `command` (a shell line) on the instance, with `stdin` fed to it.
    pub fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<Ran, ShellError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.options()).arg(self.target()).arg(command);
        self.finish(cmd, stdin, &self.program)
    }

    /// Copies `paths` (relative to `local_root`, files or folders) into
    /// `remote_root` on the instance, keeping their relative places. A file
    /// already there whole is not sent again; one cut off mid-way is
    /// resumed, and it appears under its name only once complete.
    pub fn upload(
        &self,
        local_root: &Path,
        paths: &[String],
        remote_root: &str,
    ) -> Result<Ran, ShellError> {
        let mut cmd = self.rsync_command();
        cmd.arg(format!("{}/", local_root.display())).arg(format!(
            "{}:{}/",
            self.target(),
            remote_root
        ));
        self.finish(cmd, Some(Self::list(paths).as_bytes()), &self.rsync)
    }

    /// Copies `paths` (relative to `remote_root`) from the instance into
    /// `local_root`, as [`Ssh::upload`] does the other way.
    pub fn download(
        &self,
        remote_root: &str,
        paths: &[String],
        local_root: &Path,
    ) -> Result<Ran, ShellError> {
        let mut cmd = self.rsync_command();
        cmd.arg(format!("{}:{}/", self.target(), remote_root))
            .arg(format!("{}/", local_root.display()));
        self.finish(cmd, Some(Self::list(paths).as_bytes()), &self.rsync)
    }

    /// Copies one local file to `remote_path` (a file name there).
    pub fn upload_file(&self, local: &Path, remote_path: &str) -> Result<Ran, ShellError> {
        let mut cmd = Command::new(&self.rsync);
        cmd.args(["-a", "--partial-dir=.ategnatos-partial", "-e"])
            .arg(self.rsync_shell())
            .arg(local)
            .arg(format!("{}:{}", self.target(), remote_path));
        self.finish(cmd, None, &self.rsync)
    }

    fn list(paths: &[String]) -> String {
        let mut text = paths.join("\n");
        text.push('\n');
        text
    }

    /// rsync's `-e`: our ssh with our options, quoted as rsync splits it.
    fn rsync_shell(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.options())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn rsync_command(&self) -> Command {
        let mut cmd = Command::new(&self.rsync);
        // -a keeps times (so a whole file is not sent twice); -r walks the
        // folders the list names; -R keeps each path's place; partial
        // files wait in a side folder, never under their own name.
        cmd.args([
            "-a",
            "-r",
            "-R",
            "--partial-dir=.ategnatos-partial",
            "--files-from=-",
            "-e",
        ])
        .arg(self.rsync_shell());
        cmd
    }

    fn finish(
        &self,
        mut cmd: Command,
        stdin: Option<&[u8]>,
        program: &Path,
    ) -> Result<Ran, ShellError> {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| ShellError::Missing {
            program: program.display().to_string(),
            cause: e.to_string(),
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that stops reading early closes the pipe: its exit
            // status says what happened, not this write.
            let _ = pipe.write_all(input);
        }
        let out = child.wait_with_output().map_err(|e| ShellError::Missing {
            program: program.display().to_string(),
            cause: e.to_string(),
        })?;
        let ran = Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // ssh says 255 for its own failures; rsync says 255 when its ssh
        // did, 12 for a stream cut mid-way, 30/35 for timeouts.
        let rsync = program == self.rsync.as_path();
        let lost =
            ran.code == 255 || ran.code == -1 || (rsync && matches!(ran.code, 10 | 12 | 30 | 35));
        if lost {
            return Err(ShellError::Connection {
                target: format!("{}:{}", self.target(), self.endpoint.port),
                said: {
                    let s = ran.stderr.trim();
                    if s.is_empty() {
                        format!("exit status {}", ran.code)
                    } else {
                        s.lines().last().unwrap_or(s).to_string()
                    }
                },
            });
        }
        Ok(ran)
    }
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
