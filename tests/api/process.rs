//! `tokend` as a separate process: the real binary, for the command line,
//! signals (SIGTERM, SIGKILL) and anything else an in-process server cannot
//! show.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::eventually;

pub const BIN: &str = env!("CARGO_BIN_EXE_tokend");

/// `tokend` with `args`, unaffected by the environment of the test run.
pub fn tokend(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("TOKEND_") {
            command.env_remove(name);
        }
    }
    command
}

/// A free local port (bound, read, released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A `tokend serve` process; killed if the test ends early.
pub struct Server {
    child: Option<Child>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// Where it listens, `127.0.0.1:PORT`.
    pub listen: String,
}

impl Server {
    pub fn start(url: &str, listen: &str) -> Self {
        Self::start_with(url, listen, &[], &[])
    }

    pub fn start_with(url: &str, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec![
            "--database-url",
            url,
            "serve",
            "--listen",
            listen,
            "--usage-flush-interval",
            "1h",
            "--health-check-interval",
            "200ms",
        ];
        args.extend_from_slice(extra);
        let mut command = tokend(&args);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tokend serve");
        let mut pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Self {
            child: Some(child),
            stderr: Some(stderr),
            listen: listen.to_owned(),
        }
    }

    /// A lazily connecting channel to the server.
    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.listen))
            .expect("uri")
            .connect_lazy()
    }

    /// Waits until health reports SERVING.
    pub async fn wait_serving(&self) {
        let channel = self.channel();
        eventually("tokend serve to report SERVING", || {
            let mut health = HealthClient::new(channel.clone());
            async move {
                let answer = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .ok()?;
                (answer.into_inner().status == ServingStatus::Serving as i32).then_some(())
            }
        })
        .await;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. "-TERM").
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "{signal} not delivered");
    }

    /// SIGKILL, then reaps the process; returns what it wrote to stderr.
    pub fn kill9(mut self) -> String {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        self.stderr
            .take()
            .map(|h| h.join().expect("stderr reader"))
            .unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit; returns the exit
    /// code and everything the server wrote to stderr.
    pub async fn terminate(self) -> (Option<i32>, String) {
        self.signal("-TERM");
        let (code, log, _) = self.wait_exit(Duration::from_secs(20)).await;
        (code, log)
    }

    /// Waits (at most `limit`) for the process to exit on its own; returns
    /// its exit code, its stderr and how long the wait took.
    pub async fn wait_exit(mut self, limit: Duration) -> (Option<i32>, String, Duration) {
        let mut child = self.child.take().expect("running");
        let started = std::time::Instant::now();
        let wait = tokio::task::spawn_blocking(move || {
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    return Ok(status);
                }
                if started.elapsed() > limit {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("tokend did not exit within {limit:?}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let status = wait.await.expect("join").unwrap_or_else(|e| panic!("{e}"));
        let log = self.stderr.take().unwrap().join().expect("stderr reader");
        (status.code(), log, started.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
