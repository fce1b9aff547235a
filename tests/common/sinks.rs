//! Receivers of what ACP sends: an HTTP endpoint that keeps what it accepted (and can be
//! taken down), and a real SMTP server (mailin) on 127.0.0.1.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// An HTTP receiver that can be taken down (503) and keeps what it accepted.
#[derive(Clone, Default)]
pub struct Receiver {
    pub down: Arc<AtomicBool>,
    pub got: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    pub url: String,
}

impl Receiver {
    pub async fn start() -> Self {
        let mut r = Self::default();
        let state = r.clone();
        let app = axum::Router::new().route(
            "/in",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    if state.down.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let body = serde_json::from_slice(&body).unwrap();
                    state.got.lock().unwrap().push((headers, body));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        r.url = format!("http://{}/in", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.1.clone())
            .collect()
    }
}

/// A real SMTP server (mailin) on 127.0.0.1 that refuses mail with 451 while "down", and
/// answers `MAIL FROM` with scripted refusals first.
#[derive(Clone, Default)]
pub struct Smtp {
    pub down: Arc<AtomicBool>,
    refusals: Arc<Mutex<std::collections::VecDeque<mailin_embedded::Response>>>,
    mails: Arc<Mutex<Vec<String>>>,
    current: Vec<u8>,
    pub port: u16,
}

impl mailin_embedded::Handler for Smtp {
    fn mail(
        &mut self,
        _ip: std::net::IpAddr,
        _domain: &str,
        _from: &str,
    ) -> mailin_embedded::Response {
        if self.down.load(Ordering::SeqCst) {
            return mailin_embedded::response::INTERNAL_ERROR;
        }
        self.refusals
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(mailin_embedded::response::OK)
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let mail = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
        self.mails.lock().unwrap().push(mail);
        mailin_embedded::response::OK
    }
}

impl Smtp {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let smtp = Smtp {
            port: listener.local_addr().unwrap().port(),
            ..Default::default()
        };
        let mut server = mailin_embedded::Server::new(smtp.clone());
        server.with_name("sink.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the test SMTP server stopped: {e}");
            }
        });
        smtp
    }

    /// Answers the next mails' `MAIL FROM` with these replies, one each.
    pub fn refuse(&self, replies: Vec<mailin_embedded::Response>) {
        self.refusals.lock().unwrap().extend(replies);
    }

    pub fn mails(&self) -> Vec<String> {
        self.mails.lock().unwrap().clone()
    }
}
