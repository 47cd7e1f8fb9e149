//! A loopback upstream that fails on purpose, chosen by the request's
//! path, for the `faulty` cluster of `envoy.yaml`:
//!
//! - `/upstream/reset-before-response...`: reads the request and closes
//!   the connection without answering;
//! - `/upstream/reset-after-response-started...`: sends `200` with
//!   `content-type: text/plain`, `content-length: 10` and four bytes of
//!   body (`part`), then closes the connection;
//! - `/upstream/late...`: waits 100 ms, then answers `200` with
//!   `content-type: text/plain` and the body `late`;
//! - `/upstream/trailers...`: answers `200` with `content-type:
//!   text/plain`, the body `body` chunked, and the trailer
//!   `x-trailer: t1`;
//! - anything else: closes the connection.
//!
//! Scenarios on these paths describe the same upstream to the harness in
//! their request's `upstream`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest the server runs, whatever happens to the test.
const LIFETIME: Duration = Duration::from_secs(600);

/// The server, listening until dropped.
pub struct FaultyUpstream {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultyUpstream {
    /// Binds a free loopback port and starts serving.
    pub fn start() -> FaultyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || serve(&listener, &stopped));
        FaultyUpstream {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, stop: &AtomicBool) {
    let deadline = Instant::now() + LIFETIME;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match listener.accept() {
            Ok((connection, _)) => {
                std::thread::spawn(move || answer(connection));
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

/// Reads one request head (at most 64 KiB, at most 5 s) and acts on its
/// path.
fn answer(mut connection: TcpStream) {
    let _ = connection.set_nonblocking(false);
    let _ = connection.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
        match connection.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split(' ').nth(1).unwrap_or_default();
    if path.starts_with("/upstream/reset-after-response-started") {
        let partial = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                       content-length: 10\r\n\r\npart";
        let _ = connection.write_all(partial.as_bytes());
        // Let Envoy read the part before the connection closes.
        std::thread::sleep(Duration::from_millis(50));
    } else if path.starts_with("/upstream/trailers") {
        let chunked = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                       transfer-encoding: chunked\r\n\r\n\
                       4\r\nbody\r\n0\r\nx-trailer: t1\r\n\r\n";
        let _ = connection.write_all(chunked.as_bytes());
        std::thread::sleep(Duration::from_millis(200));
    } else if path.starts_with("/upstream/late") {
        std::thread::sleep(Duration::from_millis(100));
        let late = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                    content-length: 4\r\n\r\nlate";
        let _ = connection.write_all(late.as_bytes());
        std::thread::sleep(Duration::from_millis(200));
    }
}
