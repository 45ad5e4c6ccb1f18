//! A real `redis-server` (Debian's package) on a loopback port, for the
//! fleet's tests: started, killed and restarted on the same port like an
//! outage. No persistence: a restart comes back empty, the worst case.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running redis-server, killed when dropped.
pub struct Redis {
    /// Its address.
    pub addr: SocketAddr,
    path: std::path::PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// Starts one on a free port, or `None` (after saying so) when
    /// redis-server is not installed and not required.
    pub async fn start() -> Option<Redis> {
        let path = super::external::tool("redis-server", "redis-server")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut r = Redis {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            path,
            child: None,
        };
        r.restart().await;
        Some(r)
    }

    /// `redis://ADDR`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Kills it at once (SIGKILL: an outage, not a goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port and waits until it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.path)
            .args([
                "--port",
                &self.addr.port().to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                // The slow-Redis test blocks it with DEBUG SLEEP.
                "--enable-debug-command",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = self.conn().await
                && ::redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A connection for the test's own reads.
    pub async fn conn(&self) -> ::redis::RedisResult<::redis::aio::MultiplexedConnection> {
        ::redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
