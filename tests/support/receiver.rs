//! A small real HTTP server on 127.0.0.1 for tests of notifications: it records the method, path,
//! headers and body of every request, and answers 200, or 500 for the next N requests, or never
//! (a hung endpoint). HTTP/1.1 with Content-Length bodies, one request per connection; std only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or null when it is not (a ping's empty body).
    pub fn json_or_null(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body_text()))
    }
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    failures_left: AtomicUsize,
    failure_status: AtomicU16,
    hang: AtomicBool,
    stop: AtomicBool,
}

/// The server; it stops when dropped.
pub struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// The longest a hung connection is held, so that a test that forgets its receiver still ends.
const LONGEST_HANG: Duration = Duration::from_secs(60);

impl Receiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port on 127.0.0.1");
        let port = listener.local_addr().expect("a local address").port();
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&shared);
                    std::thread::spawn(move || serve(stream, &shared));
                }
            })
        };
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answer the next `n` requests with 500.
    pub fn fail_next(&self, n: usize) -> &Self {
        self.answer_next(n, 500)
    }

    /// Answer the next `n` requests with `status` (an error or a redirect) instead of 200.
    pub fn answer_next(&self, n: usize, status: u16) -> &Self {
        self.shared.failure_status.store(status, Ordering::SeqCst);
        self.shared.failures_left.store(n, Ordering::SeqCst);
        self
    }

    /// Never answer from now on (each connection is held open until the receiver stops).
    pub fn hang(&self) -> &Self {
        self.shared.hang.store(true, Ordering::SeqCst);
        self
    }

    /// Answer again (after [`Self::hang`]); connections held so far are let go unanswered.
    pub fn answer(&self) -> &Self {
        self.shared.hang.store(false, Ordering::SeqCst);
        self
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The requests, once at least `n` have arrived; fails the test after `within`.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Request> {
        let deadline = Instant::now() + within;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "{n} requests expected within {within:?}, got {}: {requests:#?}",
                requests.len()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the acceptor, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    if let Ok(mut requests) = shared.requests.lock() {
        requests.push(request);
    }
    if shared.hang.load(Ordering::SeqCst) {
        let start = Instant::now();
        while !shared.stop.load(Ordering::SeqCst)
            && shared.hang.load(Ordering::SeqCst)
            && start.elapsed() < LONGEST_HANG
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        return;
    }
    let fail = shared
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let (status, body) = if fail {
        match shared.failure_status.load(Ordering::SeqCst) {
            500 => ("500 Internal Server Error".to_owned(), "boom"),
            404 => ("404 Not Found".to_owned(), "no_service"),
            429 => ("429 Too Many Requests".to_owned(), "slow down"),
            code => (format!("{code} Other"), ""),
        }
    } else {
        ("200 OK".to_owned(), "OK")
    };
    let mut writer = writer;
    let _ = write!(
        writer,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = writer.flush();
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}
