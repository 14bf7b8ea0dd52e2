//! WebSocket by hand over a plain `TcpStream`: the upgrade request as bytes, frames written
//! and read one by one. For peers that break the protocol in ways a WebSocket library will
//! not (unknown opcodes, garbage after the upgrade, frames after a close).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// WebSocket opcodes (RFC 6455 §5.2).
pub mod op {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xa;
}

/// One frame as received (the server's frames are never masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Received {
    /// The status code of a close frame, if it carries one.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == op::CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// How a connection ended, as seen by [`RawWs::read_until_close`].
#[derive(Debug)]
pub struct Ending {
    /// Data frames received before the end.
    pub data: Vec<Received>,
    /// The close frame, if one came.
    pub close: Option<Received>,
    /// Whether the server then closed the TCP connection (EOF or reset) before the deadline.
    pub tcp_closed: bool,
}

/// An upgraded connection.
pub struct RawWs {
    pub stream: TcpStream,
    /// Bytes read past the 101 answer's head.
    buffer: Vec<u8>,
}

/// Writes `GET path` with the upgrade headers and `headers`, and reads the answer's head.
/// Returns the status and the head, and the connection when the status is 101.
pub fn upgrade(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, Option<RawWs>) {
    let mut stream = send_upgrade(addr, path, headers);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).expect("read answer");
        assert!(n > 0, "connection closed before the answer's head");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let rest = buffer[end + 4..].to_vec();
    let ws = (status == 101).then_some(RawWs {
        stream,
        buffer: rest,
    });
    (status, head, ws)
}

/// A frame as a client sends it: masked (with a fixed key; masking is not secrecy here).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A close frame with `code`, as a client sends it.
pub fn client_close(code: u16) -> Vec<u8> {
    client_frame(true, op::CLOSE, &code.to_be_bytes())
}

impl RawWs {
    /// Writes raw bytes (frames or anything else). A reset is not an error here: the server
    /// may close while a large write is under way.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the next frame within `deadline`, answering nothing; `None` on EOF, reset or
    /// timeout.
    pub fn read_frame(&mut self, deadline: Duration) -> Option<Received> {
        let start = Instant::now();
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            let left = deadline.checked_sub(start.elapsed())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads frames until a close frame and then until the server closes the TCP connection,
    /// all within `deadline`.
    pub fn read_until_close(&mut self, deadline: Duration) -> Ending {
        let start = Instant::now();
        let mut data = Vec::new();
        let mut close = None;
        while close.is_none() {
            let left = deadline.saturating_sub(start.elapsed());
            match self.read_frame(left) {
                Some(f) if f.opcode == op::CLOSE => close = Some(f),
                Some(f) if f.opcode == op::PING || f.opcode == op::PONG => {}
                Some(f) => data.push(f),
                None => break,
            }
        }
        let tcp_closed = self.wait_tcp_closed(deadline.saturating_sub(start.elapsed()));
        Ending {
            data,
            close,
            tcp_closed,
        }
    }

    /// Whether the server closes the TCP connection within `deadline` (bytes still arriving
    /// are read and dropped).
    pub fn wait_tcp_closed(&mut self, deadline: Duration) -> bool {
        let start = Instant::now();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let Some(left) = deadline.checked_sub(start.elapsed()) else {
                return false;
            };
            if self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_err()
            {
                return true;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// Takes one complete frame off the buffer.
    fn parse(&mut self) -> Option<Received> {
        let b = &self.buffer;
        if b.len() < 2 {
            return None;
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        let key = if masked {
            let key: [u8; 4] = b.get(at..at + 4)?.try_into().unwrap();
            at += 4;
            Some(key)
        } else {
            None
        };
        let mut payload = b.get(at..at + len)?.to_vec();
        if let Some(key) = key {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, p)| *p ^= key[i % 4]);
        }
        self.buffer.drain(..at + len);
        Some(Received {
            fin,
            opcode,
            payload,
        })
    }
}

/// Connects and writes `GET path` with the upgrade headers and `headers`.
fn send_upgrade(addr: &str, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(crate::DEADLINE))
        .expect("read timeout");
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write request");
    stream
}

/// An upgrade that is expected to be refused: its status and the body's text.
pub fn refused_upgrade(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = send_upgrade(addr, path, headers);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let status: u16 = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("status");
            assert_ne!(status, 101, "{path} was upgraded: {head}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())
                        .flatten()
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let body = &buffer[end + 4..end + 4 + length];
                return (status, String::from_utf8_lossy(body).into_owned());
            }
        }
        let n = stream.read(&mut chunk).expect("read answer");
        assert!(n > 0, "connection closed before the whole answer");
        buffer.extend_from_slice(&chunk[..n]);
    }
}
