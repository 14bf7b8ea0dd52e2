//! The full-duplex HTTP CLI by hand (`POST /cli?remoting=false`, compat §5): each side on
//! its own connection, from any loopback address, with whatever credentials a test wants
//! on each side, and the download body read frame by frame. For tests of what a client
//! other than ours may send (jenkins-cli.jar sends `Authorization` on both sides; an
//! attacker may send none on one of them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use steward_protocol::plaincli::{self, Frame, op};

use crate::DEADLINE;

/// What one side sends besides `Session` and `Side`: full header lines (`Authorization: …`),
/// and the loopback address it connects from (127.0.0.1 when `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    pub headers: &'a [&'a str],
    pub source: Option<&'a str>,
}

impl<'a> Caller<'a> {
    /// Sends `headers` (full lines) from 127.0.0.1.
    pub fn with(headers: &'a [&'a str]) -> Caller<'a> {
        Caller {
            headers,
            source: None,
        }
    }
}

/// Connects to `addr`, from `source` when given (any 127.0.0.0/8 address works on Linux).
pub fn connect(addr: &str, source: Option<&str>) -> TcpStream {
    let tcp = match source {
        None => TcpStream::connect(addr).expect("connect"),
        Some(source) => {
            let source: SocketAddr = format!("{source}:0").parse().expect("a source address");
            let target: SocketAddr = addr.parse().expect("a socket address");
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket
                .bind(&source.into())
                .expect("bind the source address");
            socket.connect(&target.into()).expect("connect");
            socket.into()
        }
    };
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    tcp
}

/// `POST /cli?remoting=false` with `Session` and `Side`; for an upload the body is chunked
/// and left open. Returns the connection once the head is written.
pub fn post_side(addr: &str, session: &str, side: &str, from: Caller<'_>) -> TcpStream {
    let mut tcp = connect(addr, from.source);
    tcp.write_all(&side_head(addr, session, side, from))
        .unwrap();
    tcp
}

/// A whole upload side: the head and `body` (frames, in one chunk) written at once, then
/// the body's end. Written with one call, so a refusal that closes the connection cannot
/// break the writing half-way; the answer is left to read.
pub fn post_upload(addr: &str, session: &str, from: Caller<'_>, body: &[u8]) -> TcpStream {
    let mut tcp = connect(addr, from.source);
    let mut request = side_head(addr, session, "upload", from);
    request.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    tcp.write_all(&request).unwrap();
    tcp
}

fn side_head(addr: &str, session: &str, side: &str, from: Caller<'_>) -> Vec<u8> {
    let body = if side == "upload" {
        "Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n"
    } else {
        "Content-Length: 0\r\n"
    };
    let mut head = format!(
        "POST /cli?remoting=false HTTP/1.1\r\nHost: {addr}\r\nSession: {session}\r\n\
         Side: {side}\r\n{body}"
    );
    for header in from.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// Reads an answer's head: status, lower-cased head, and the bytes read past it.
pub fn read_head(tcp: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
            return (status, head, buf[end + 4..].to_vec());
        }
        let n = tcp.read(&mut chunk).expect("an answer");
        assert!(n > 0, "closed before the answer's head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a whole answer that has a `Content-Length` (the controller's refusals): status,
/// lower-cased head and the body as text. The connection may stay open (keep-alive).
pub fn read_answer(tcp: &mut TcpStream) -> (u16, String, String) {
    let (status, head, rest) = read_head(tcp);
    let body = read_body(tcp, &head, rest);
    (status, head, body)
}

/// The rest of a body of `Content-Length` bytes, of which `rest` has arrived, as text.
fn read_body(tcp: &mut TcpStream, head: &str, rest: Vec<u8>) -> String {
    String::from_utf8_lossy(&read_body_bytes(tcp, head, rest)).into_owned()
}

fn read_body_bytes(tcp: &mut TcpStream, head: &str, mut rest: Vec<u8>) -> Vec<u8> {
    let len: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("an answer with a Content-Length");
    let mut chunk = [0u8; 4096];
    while rest.len() < len {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
        }
    }
    rest
}

/// Writes one HTTP chunk of an upload body.
pub fn chunk(tcp: &mut TcpStream, data: &[u8]) {
    write!(tcp, "{:x}\r\n", data.len()).unwrap();
    tcp.write_all(data).unwrap();
    tcp.write_all(b"\r\n").unwrap();
}

/// Ends an upload body.
pub fn end_body(tcp: &mut TcpStream) {
    tcp.write_all(b"0\r\n\r\n").unwrap();
}

/// `frames` in the HTTP framing, as an upload body carries them.
pub fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    for frame in frames {
        plaincli::encode_http(frame, &mut buf).expect("a frame that encodes");
    }
    buf.to_vec()
}

/// The frames of a command line: an `ARG` each, then `START` and `END_STDIN`.
pub fn command_line(args: &[&str]) -> Vec<u8> {
    let mut frames: Vec<Frame> = args.iter().map(|a| Frame::Arg((*a).to_owned())).collect();
    frames.push(Frame::Start);
    frames.push(Frame::EndStdin);
    encode(&frames)
}

/// A download side on its own connection, past its head and first `0x00` byte.
pub struct Download {
    tcp: TcpStream,
    /// Read past the head, not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet taken as frames.
    body: Vec<u8>,
    body_ended: bool,
}

impl Download {
    /// Opens a download side, checking its 200, `Hudson-Duplex` and first `0x00` byte.
    pub fn open(addr: &str, session: &str, from: Caller<'_>) -> Download {
        match Download::try_open(addr, session, from) {
            Ok(download) => download,
            Err((status, head, body)) => panic!("a download side got {status}: {head}\n{body}"),
        }
    }

    /// Opens a download side; an answer other than 200 is returned as (status, head, body).
    pub fn try_open(
        addr: &str,
        session: &str,
        from: Caller<'_>,
    ) -> Result<Download, (u16, String, String)> {
        let mut tcp = post_side(addr, session, "download", from);
        let (status, head, raw) = read_head(&mut tcp);
        if status != 200 {
            let body = read_body(&mut tcp, &head, raw);
            return Err((status, head, body));
        }
        assert!(head.contains("hudson-duplex: true"), "{head}");
        let mut side = if head.contains("content-length:") {
            // A body known in advance (an answer given at once, bad credentials say).
            let body = read_body_bytes(&mut tcp, &head, raw);
            Download {
                tcp,
                raw: Vec::new(),
                body,
                body_ended: true,
            }
        } else {
            Download {
                tcp,
                raw,
                body: Vec::new(),
                body_ended: false,
            }
        };
        side.fill(1);
        assert_eq!(side.body.first(), Some(&0), "the first byte is 0x00");
        side.body.remove(0);
        Ok(side)
    }

    /// Reads until `n` body bytes are buffered or the body ends.
    fn fill(&mut self, n: usize) {
        let mut chunk = [0u8; 4096];
        while self.body.len() < n && !self.body_ended {
            // De-chunk what has arrived.
            if let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.raw[..line_end])
                        .split(';')
                        .next()
                        .unwrap()
                        .trim(),
                    16,
                )
                .expect("a chunk size");
                if size == 0 {
                    self.body_ended = true;
                    break;
                }
                if self.raw.len() >= line_end + 2 + size + 2 {
                    let data = self.raw[line_end + 2..line_end + 2 + size].to_vec();
                    self.body.extend_from_slice(&data);
                    self.raw.drain(..line_end + 2 + size + 2);
                    continue;
                }
            }
            match self.tcp.read(&mut chunk) {
                Ok(0) | Err(_) => self.body_ended = true,
                Ok(n) => self.raw.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The server's frames until the body ends: (opcode, payload).
    pub fn frames_to_end(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        loop {
            self.fill(5);
            if self.body.len() < 5 {
                assert!(self.body.is_empty(), "body ended inside a frame");
                return frames;
            }
            let len = u32::from_be_bytes(self.body[..4].try_into().unwrap()) as usize;
            self.fill(5 + len);
            let payload = self.body[5..5 + len].to_vec();
            frames.push((self.body[4], payload));
            self.body.drain(..5 + len);
        }
    }
}

/// The last frame must be `EXIT` with `code`; returns the `STDERR` text before it.
pub fn assert_exit(what: &str, frames: &[(u8, Vec<u8>)], code: i32) -> String {
    let (last_op, last) = frames.last().unwrap_or_else(|| panic!("{what}: no frames"));
    assert_eq!(*last_op, op::EXIT, "{what}: {frames:?}");
    assert_eq!(last[..], code.to_be_bytes(), "{what}: {frames:?}");
    text_of(frames, op::STDERR)
}

/// The payloads of the frames with opcode `op`, as text.
pub fn text_of(frames: &[(u8, Vec<u8>)], opcode: u8) -> String {
    frames
        .iter()
        .filter(|(o, _)| *o == opcode)
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .collect()
}
