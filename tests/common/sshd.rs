//! A real OpenSSH server on 127.0.0.1, run by the test as itself: its own
//! host key, one authorised key (the artist's, made here), its own port.
//! It stands in for a rented instance's sshd; it stops when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    /// The artist's private key, which the server takes.
    pub key: PathBuf,
    /// Who logs in (the user running the test).
    pub user: String,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (openssh-client; .ci/run installs it)");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Starts the server with its files in `dir`.
pub fn start(dir: &Path) -> Sshd {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("an OpenSSH server (openssh-server; .ci/run installs it)");
    std::fs::create_dir_all(dir).unwrap();
    let host_key = dir.join("host_key");
    let key = dir.join("artist_key");
    keygen(&host_key);
    keygen(&key);
    let authorized = dir.join("authorized_keys");
    std::fs::copy(dir.join("artist_key.pub"), &authorized).unwrap();
    // sshd run by root wants its privilege-separation folder.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nLogLevel ERROR\n",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new(&sshd)
        .arg("-D")
        .arg("-f")
        .arg(&config)
        .arg("-E")
        .arg(dir.join("sshd.log"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let server = Sshd {
        port,
        key,
        user,
        child,
    };
    // Ready once it says its first line.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Read;
            let mut first = [0u8; 4];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if s.read_exact(&mut first).is_ok() && &first == b"SSH-" {
                return server;
            }
        }
        assert!(
            Instant::now() < deadline,
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::yield_now();
    }
}
