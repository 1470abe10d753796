//! A hostile or scripted HTTP server on loopback for the `verify` and
//! `chaos` tests: each request's path picks an answer, a small JSON one or
//! a chunked body of N bytes streamed 1 MiB at a time. Counts the body
//! bytes it managed to write, so a test can see that the client hung up.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What the server sends back.
#[derive(Clone)]
pub enum Answer {
    /// `200` with this JSON text.
    Json(String),
    /// `200`, a chunked body of this many bytes (`x`s), 1 MiB per chunk.
    Stream(u64),
}

/// A running fake; the accept thread lives as long as the test process.
pub struct Fake {
    pub base: String,
    /// Body bytes written to clients so far.
    pub written: Arc<AtomicU64>,
}

/// Starts a fake answering each request with `answer(path)`.
pub fn start(answer: fn(&str) -> Answer) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let w = w.clone();
            std::thread::spawn(move || serve(conn, answer, &w));
        }
    });
    Fake { base, written }
}

/// One connection: requests until the client closes (keep-alive).
fn serve(conn: TcpStream, answer: fn(&str) -> Answer, written: &AtomicU64) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if respond(&mut out, answer(&path), written).is_err() {
            return;
        }
    }
}

fn respond(out: &mut TcpStream, a: Answer, written: &AtomicU64) -> std::io::Result<()> {
    match a {
        Answer::Json(text) => write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        ),
        Answer::Stream(total) => {
            out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            )?;
            let chunk = vec![b'x'; 1 << 20];
            let mut left = total;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                write!(out, "{n:x}\r\n")?;
                out.write_all(&chunk[..n])?;
                out.write_all(b"\r\n")?;
                written.fetch_add(n as u64, Ordering::Relaxed);
                left -= n as u64;
            }
            out.write_all(b"0\r\n\r\n")
        }
    }
}
