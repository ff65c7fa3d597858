//! Shared helpers for the integration tests: a real server on `127.0.0.1:0` over a real
//! store (embedded in a tempdir, or a real Redis), and a small HTTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use riffle_auth::Gate;
use riffle_registry::Registry;
use riffle_serve::ServeDeps;
use riffle_store::{OnlineStore, StoreLimits, StoreUrl};
use tokio::sync::oneshot;

pub fn registry(file: &str) -> Arc<Registry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    Arc::new(Registry::load(&path).expect("test registry is valid"))
}

pub fn registry_from(text: &str) -> Arc<Registry> {
    Arc::new(Registry::from_toml(text).expect("test registry is valid"))
}

/// A running server; stopped gracefully on drop (or by [`Server::stop`], which waits).
pub struct Server {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Stops the server gracefully and waits until it has finished (requests in flight,
    /// the feature log's last file).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("the server task ends cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        decode(resp).await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        decode(resp).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, String) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }
}

pub async fn decode(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let json = if text.is_empty() {
        serde_json::Value::String(String::new())
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    (status, json)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Options {
    pub cache: bool,
    pub token: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache: true,
            token: None,
        }
    }
}

/// Starts a server over an embedded store in a fresh tempdir.
pub async fn embedded(registry: Arc<Registry>, opts: Options) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Embedded(dir.path().to_owned());
    let mut server = start(registry, &url, opts).await;
    server._dir = Some(dir);
    server
}

/// Starts a server over the store at `url`.
pub async fn start(registry: Arc<Registry>, url: &StoreUrl, opts: Options) -> Server {
    let limits = StoreLimits::from_settings(&registry.store);
    let store = OnlineStore::open(url, registry.clone(), limits)
        .await
        .expect("store opens");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let gate = Gate::new(registry.clone(), opts.token.as_deref(), "serve");
    let deps = ServeDeps {
        registry,
        store: Arc::new(store),
        cache_enabled: opts.cache,
        gate: Arc::new(gate),
    };
    let task = tokio::spawn(async move {
        riffle_serve::run(listener, deps, async {
            let _ = stopped.await;
        })
        .await
        .expect("server runs");
    });
    Server {
        addr,
        client: reqwest::Client::new(),
        stop: Some(stop),
        task: Some(task),
        _dir: None,
    }
}
