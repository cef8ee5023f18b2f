//! A tiny HTTP/1.x endpoint for `/metrics`, on its own thread: it only reads the shared
//! counter regions, so a slow or stuck scraper never touches a guest's data path.
//! One connection at a time, `Connection: close`, requests over 8 KiB or slower than
//! 5 s are dropped.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::collect::GuestCollector;

/// Errors starting the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("metrics={addr}: cannot listen: {source}{}", in_use_hint(.source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("starting the metrics thread: {0}")]
    Thread(#[source] io::Error),
}

fn in_use_hint(e: &io::Error) -> &'static str {
    if e.kind() == io::ErrorKind::AddrInUse {
        " (another process has this port: choose another, e.g. metrics=127.0.0.1:9465)"
    } else {
        ""
    }
}

/// Bind the listening socket (so a busy port is an error at start).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, HttpError> {
    TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })
}

/// Serve `collector` on `listener` from a new thread, until the process exits.
pub fn spawn(
    listener: TcpListener,
    collector: Arc<GuestCollector>,
) -> Result<JoinHandle<()>, HttpError> {
    std::thread::Builder::new()
        .name("vecbox-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = handle(s, &collector) {
                            tracing::debug!(error = %e, "metrics request failed");
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
        .map_err(HttpError::Thread)
}

fn handle(mut s: TcpStream, collector: &GuestCollector) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
        if req.len() > 8192 {
            return respond(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            );
        }
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") | ("HEAD", "/metrics") => {
            let body = collector.encode();
            let body = if method == "HEAD" {
                String::new()
            } else {
                body
            };
            respond(&mut s, "200 OK", prometheus::TEXT_FORMAT, &body)
        }
        ("GET", "/") => respond(
            &mut s,
            "200 OK",
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">/metrics</a></body></html>\n",
        ),
        ("GET", _) | ("HEAD", _) => {
            respond(&mut s, "404 Not Found", "text/plain", "try /metrics\n")
        }
        _ => respond(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n",
        ),
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_metrics_and_rejects_other_paths() {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let c = Arc::new(GuestCollector::new());
        c.add(
            "lab1",
            "nosuch",
            std::path::PathBuf::from("/nonexistent/metrics"),
        );
        spawn(l, c).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(
            r.contains("vecbox_guest_up{lab=\"lab1\",node=\"nosuch\"} 0"),
            "{r}"
        );
        assert!(get("GET /x HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
        // Busy port: a clear error naming the address.
        let e = bind(addr).unwrap_err().to_string();
        assert!(
            e.contains(&addr.to_string()) && e.contains("choose another"),
            "{e}"
        );
    }
}
