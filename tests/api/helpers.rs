//! `spawn_app()`: the real server and the real simulator, each on a random loopback port.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use dli_graphql::{
    app::App,
    config::Config,
    sim::{SimOptions, Simulator},
};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The token tests send unless they say otherwise.
pub const TOKEN: &str = "test-token-5b1f0c7e";

/// A running server with its simulator. Both stop when this is dropped.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The simulated DLI behind it.
    pub sim: Simulator,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

/// Starts a simulator and the server pointed at it.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], SimOptions::default()).await
}

/// Like [`spawn_app`], with extra command-line arguments for the server.
pub async fn spawn_app_with(args: &[&str], sim_opts: SimOptions) -> TestApp {
    let sim = Simulator::start(([127, 0, 0, 1], 0).into(), sim_opts).await.expect("simulator starts");
    let endpoint = sim.url();
    let mut all = vec!["--listen", "127.0.0.1:0", "--endpoint", &endpoint];
    all.extend_from_slice(args);
    let config = Config::from_args(all).expect("config parses");
    spawn_with_config(config, sim).await
}

/// Starts the server from `config`, keeping `sim` alive beside it. Every planned answer is
/// checked against async-graphql's (`--verify-plans`), so every test that sends a query the
/// planned executor can answer also compares the two executors byte for byte.
pub async fn spawn_with_config(mut config: Config, sim: Simulator) -> TestApp {
    config.graphql.verify_plans = true;
    spawn_exactly(config, sim).await
}

/// Starts the server from `config` as given (the planned executor unverified, as deployed).
pub async fn spawn_exactly(config: Config, sim: Simulator) -> TestApp {
    let app = App::build(&config).await.expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.serve(async {
        let _ = stopped.await;
    }));
    TestApp { addr, sim, http: reqwest::Client::new(), _stop: stop }
}

impl TestApp {
    /// `http://addr/graphql`.
    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    /// POSTs `body` as JSON with the test token; returns status and parsed body.
    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_with_token(body, Some(TOKEN)).await
    }

    /// POSTs `body` as JSON with `token` (or none).
    pub async fn post_with_token(&self, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.graphql_url()).json(body);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let resp = req.send().await.expect("server answers");
        let status = resp.status().as_u16();
        let json = resp.json::<Value>().await.expect("JSON body");
        (status, json)
    }

    /// Runs `query` with the test token and returns the whole response body.
    pub async fn query(&self, query: &str) -> Value {
        self.post(&json!({ "query": query })).await.1
    }

    /// Runs `query` with `variables`.
    pub async fn query_vars(&self, query: &str, variables: Value) -> Value {
        self.post(&json!({ "query": query, "variables": variables })).await.1
    }
}

/// All fields of `Connection`, for selection sets.
pub const ALL_FIELDS: &str = "projectId connectionId name state rawState service destination process connectionUrl clusterName queues createTime";

/// The errors of a response, or an empty list.
pub fn errors(resp: &Value) -> Vec<Value> {
    resp["errors"].as_array().cloned().unwrap_or_default()
}

/// The single error whose path starts with `field`.
pub fn error_at<'a>(resp: &'a Value, field: &str) -> &'a Value {
    resp["errors"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["path"][0] == field))
        .unwrap_or_else(|| panic!("no error at {field} in {resp:#}"))
}

/// Runs the real binary with `RUST_LOG=trace`, `args` and `env`, lets `exercise` talk to it
/// (given the address it listens on), and returns everything it logged.
pub async fn trace_logs<F, Fut>(args: &[&str], env: &[(&str, &str)], exercise: F) -> String
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_dli-graphql"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logs = Vec::new();
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("server logs its address");
        let found = line
            .contains("GraphQL at")
            .then(|| line.split("http://").nth(1).and_then(|r| r.split('/').next()).map(str::to_owned))
            .flatten();
        logs.push(line);
        if let Some(a) = found {
            break a;
        }
    };
    exercise(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = child.kill();
    let _ = child.wait();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        logs.push(line);
    }
    logs.join("\n")
}

/// A `redis-server` of the test's own on a free loopback port, without persistence; killed
/// when dropped. Needs `redis-server` on the PATH (`.ci/run` installs Debian's package).
pub struct RedisServer {
    port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops (`freeze`, SIGSTOP) or resumes (SIGCONT) the server: connections stay open and
    /// nothing answers, as with a Redis stuck in a long command or a paused VM.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill").args([signal, &pid]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Starts the server again on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install Debian's redis-server package; .ci/run does)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on port {} never answered",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `PING` gets `+PONG` right now.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// A connection for inspecting or arranging keys from the test.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("test connects to its redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
