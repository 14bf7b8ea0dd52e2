//! Hand-made WebSocket handshakes, for checking statuses and headers exactly and for
//! playing peers the real binaries never are (a Java agent.jar, a silent peer).

use std::future::Future;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Runs a future on a fresh current-thread runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// The answer to an upgrade request.
pub enum Upgrade {
    Accepted {
        socket: Box<Socket>,
        headers: Vec<(String, String)>,
    },
    Refused {
        status: u16,
        body: String,
    },
}

impl Upgrade {
    pub fn refused(self) -> (u16, String) {
        match self {
            Upgrade::Refused { status, body } => (status, body),
            Upgrade::Accepted { .. } => panic!("expected a refusal, got 101"),
        }
    }

    pub fn accepted(self) -> (Socket, Vec<(String, String)>) {
        match self {
            Upgrade::Accepted { socket, headers } => (*socket, headers),
            Upgrade::Refused { status, body } => panic!("expected 101, got {status} {body:?}"),
        }
    }
}

/// Opens `ws_url` with exactly these extra headers.
pub async fn upgrade(ws_url: &str, headers: &[(&str, &str)]) -> Upgrade {
    let mut request = ws_url.into_client_request().expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => Upgrade::Accepted {
            socket: Box::new(socket),
            headers: response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        },
        Err(tungstenite::Error::Http(response)) => Upgrade::Refused {
            status: response.status().as_u16(),
            body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        },
        Err(e) => panic!("upgrade to {ws_url} failed: {e}"),
    }
}

/// `ws://…/wsagents/` for a controller URL.
pub fn wsagents_url(controller_url: &str) -> String {
    format!("{}wsagents/", controller_url.replacen("http", "ws", 1))
}

/// Header value of an accepted upgrade.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads until the next binary or text message (answering nothing), or `None` at close.
pub async fn next_data(socket: &mut Socket) -> Option<Message> {
    while let Some(message) = socket.next().await {
        match message {
            Ok(m @ (Message::Binary(_) | Message::Text(_))) => return Some(m),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

/// Sends a message.
pub async fn send(socket: &mut Socket, message: Message) {
    socket.send(message).await.expect("send");
}
