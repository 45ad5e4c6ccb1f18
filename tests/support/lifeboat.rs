//! Starting a real lifeboat for a test: in-process on `127.0.0.1:0`, from a
//! config written the way an operator writes it (TOML), built fluently:
//!
//! ```ignore
//! let lb = lifeboat(&origin).set("limits.header_read_timeout", "\"300ms\"").start().await;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::origin::TestOrigin;

/// A config under construction: `section -> lines`.
pub struct Harness {
    sections: BTreeMap<String, Vec<String>>,
    routes: Vec<String>,
}

/// A harness pointing at `origin`, plain listener on a free port.
pub fn lifeboat(origin: &TestOrigin) -> Harness {
    lifeboat_to(&origin.url())
}

/// A harness pointing at any origin URL (e.g. a closed port).
pub fn lifeboat_to(origin_url: &str) -> Harness {
    Harness {
        sections: BTreeMap::new(),
        routes: Vec::new(),
    }
    .set("listen.http", "\"127.0.0.1:0\"")
    .set("origin.url", &format!("\"{origin_url}\""))
    .set("log.level", "\"warn\"")
    .set("admin.listen", "\"127.0.0.1:0\"")
}

impl Harness {
    /// Sets `section.key = value` (value in TOML syntax), replacing any earlier value.
    pub fn set(mut self, dotted: &str, value: &str) -> Self {
        let (section, key) = dotted.rsplit_once('.').expect("dotted key");
        let lines = self.sections.entry(section.to_string()).or_default();
        lines.retain(|l| !l.starts_with(&format!("{key} =")));
        lines.push(format!("{key} = {value}"));
        self
    }

    /// Removes `section.key`.
    pub fn unset(mut self, dotted: &str) -> Self {
        let (section, key) = dotted.rsplit_once('.').expect("dotted key");
        if let Some(lines) = self.sections.get_mut(section) {
            lines.retain(|l| !l.starts_with(&format!("{key} =")));
        }
        self
    }

    /// A TLS listener on `127.0.0.1:0` with the test PKI's certificate.
    pub fn tls(self, pki: &crate::support::tls::TestPki) -> Self {
        self.set("listen.https", "\"127.0.0.1:0\"")
            .set("listen.tls.cert", &format!("{:?}", pki.cert))
            .set("listen.tls.key", &format!("{:?}", pki.key))
    }

    /// Adds a `[[route]]`: `how` is `match` or `prefix`.
    pub fn route(mut self, name: &str, how: &str, pattern: &str, class: &str) -> Self {
        self.routes.push(format!(
            "[[route]]\nname = \"{name}\"\n{how} = \"{pattern}\"\nclass = \"{class}\"\n"
        ));
        self
    }

    /// Adds a `[[route]]` limited to `methods` (`how` is `match` or `prefix`).
    pub fn route_for(
        mut self,
        methods: &[&str],
        name: &str,
        how: &str,
        pattern: &str,
        class: &str,
    ) -> Self {
        self.routes.push(format!(
            "[[route]]\nname = \"{name}\"\n{how} = \"{pattern}\"\nclass = \"{class}\"\nmethods = {methods:?}\n"
        ));
        self
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut out = String::new();
        for (section, lines) in &self.sections {
            out += &format!("[{section}]\n{}\n\n", lines.join("\n"));
        }
        for route in &self.routes {
            out += &format!("{route}\n");
        }
        out
    }

    /// Validates and starts lifeboat in this process; relative paths resolve against `base`.
    pub async fn start_in(self, base: &Path) -> Running {
        let config = lifeboat::config::from_str(&self.toml(), "test.toml", base)
            .unwrap_or_else(|e| panic!("{e}\n---\n{}", self.toml()));
        start_config(config).await
    }

    /// Writes the config to `file` and starts lifeboat from it, so that
    /// reloads (file watch, `POST /reload`) read that file.
    pub async fn start_from_file(self, file: &Path) -> Running {
        std::fs::write(file, self.toml()).expect("write config");
        let config = lifeboat::config::load(file).unwrap_or_else(|e| panic!("{e}"));
        let server = lifeboat::Lifeboat::bind_with_path(config, Some(file.to_path_buf()))
            .await
            .expect("bind lifeboat");
        running(server)
    }

    /// Validates and starts lifeboat in this process.
    pub async fn start(self) -> Running {
        self.start_in(Path::new(".")).await
    }
}

/// Starts lifeboat in this process from a validated config.
pub async fn start_config(config: lifeboat::config::Config) -> Running {
    {
        let server = lifeboat::Lifeboat::bind(config)
            .await
            .expect("bind lifeboat");
        running(server)
    }
}

fn running(server: lifeboat::Lifeboat) -> Running {
    {
        let http = server.http_addr();
        let https = server.https_addr();
        let shared = server.shared();
        let admin = server.admin_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running {
            http,
            https,
            shared,
            admin,
            stop: Some(stop),
            done: Some(done),
        }
    }
}

/// A lifeboat running inside the test process.
pub struct Running {
    /// Plain listener.
    pub http: Option<SocketAddr>,
    /// TLS listener.
    pub https: Option<SocketAddr>,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// The live state: mode, signals, queues.
    pub shared: std::sync::Arc<lifeboat::runtime::Shared>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<JoinHandle<bool>>,
}

impl Running {
    /// `http://ADDR/path` on the plain listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// The plain listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.http.expect("plain listener")
    }

    /// `http://ADMIN/path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("admin listener"))
    }

    /// The admin listener's `/metrics` text (Prometheus).
    pub async fn metrics(&self) -> String {
        crate::support::text_of(self.admin_url("/metrics")).await
    }

    /// The mode every request sees now.
    pub fn mode(&self) -> lifeboat::admission::Mode {
        self.shared.admission.view().mode
    }

    /// Waits (up to `limit`) until the mode is `mode`.
    pub async fn wait_for_mode(&self, mode: lifeboat::admission::Mode, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.mode() != mode {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mode stayed {:?}, expected {mode:?}",
                self.mode()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Begins graceful shutdown, as SIGTERM would.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the drain to finish; true if everything completed in time.
    pub async fn drained(mut self) -> bool {
        self.begin_shutdown();
        let done = self.done.take().expect("not yet awaited");
        done.await.expect("lifeboat task")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}
