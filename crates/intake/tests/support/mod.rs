//! Running the real `intake` binary in tests: start it on a free loopback
//! port, wait for "listening on", and kill or stop it.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses part of the fixture"
)]
#![allow(clippy::unwrap_used, reason = "a panic in a test is a failed test")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `intake serve`.
pub struct Intake {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Intake {
    /// `intake serve` on a free loopback port with `data_dir`, plus `args`.
    pub fn serve(data_dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("INTAKE_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// `http://host:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A NATS server with JetStream of the test's own, on a free port, keeping
/// its store in a directory that survives [`Nats::stop`] and
/// [`Nats::start`] (a broker outage).
pub struct Nats {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    /// Starts `/usr/sbin/nats-server -js` on a free port.
    pub fn start_new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut nats = Self {
            child: None,
            port,
            store: tempfile::tempdir().unwrap(),
        };
        nats.start();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on its port and store, and waits until it
    /// accepts connections.
    pub fn start(&mut self) {
        let child = Command::new("/usr/sbin/nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server) must be installed");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("nats-server did not start on port {}", self.port);
    }

    /// Kills the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
