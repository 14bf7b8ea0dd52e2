//! Network fixtures on loopback: a TLS-terminating front (like nginx with TLS in front of
//! the controller) with a throwaway CA or a certificate made with the `openssl` command
//! line, and an HTTP `CONNECT` proxy that records what it tunnelled. Each runs on its own
//! thread and stops when dropped.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A fixture serving on a background runtime until dropped.
pub struct Fixture {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve<F, Fut>(handle: F) -> Fixture
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx
                .send(listener.local_addr().unwrap().to_string())
                .unwrap();
            let handle = Arc::new(handle);
            let accept = async {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn((handle)(socket));
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = stopped => {}
            }
        });
        runtime.shutdown_background();
    });
    let addr = addr_rx.recv().unwrap();
    Fixture {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// A TLS front for `backend`, serving one certificate: a leaf of a fresh CA, or a given one.
pub struct TlsFront {
    pub fixture: Fixture,
    /// The CA certificate, PEM, to pass to `-cert` (with [`TlsFront::start_with`], the
    /// served certificate itself).
    pub ca_pem: String,
    backend: Arc<Mutex<String>>,
}

impl TlsFront {
    /// Starts the front with a leaf for `localhost` issued by a fresh CA; connections are
    /// refused until [`TlsFront::set_backend`].
    pub fn start() -> TlsFront {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Steward test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TlsFront::serving(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
            ca_cert.pem(),
        )
    }

    /// Starts the front serving `cert_pem` (one certificate, as made by `openssl req -x509`)
    /// with its private key `key_pem`.
    pub fn start_with(cert_pem: &str, key_pem: &str) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("a PEM certificate");
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .expect("a PEM private key");
        TlsFront::serving(chain, key, cert_pem.to_owned())
    }

    fn serving(
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
        ca_pem: String,
    ) -> TlsFront {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let backend = Arc::new(Mutex::new(String::new()));
        let target = backend.clone();
        let fixture = serve(move |socket| {
            let acceptor = acceptor.clone();
            let backend = target.lock().unwrap().clone();
            async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(&backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            }
        });
        TlsFront {
            fixture,
            ca_pem,
            backend,
        }
    }

    /// Where decrypted connections go (`host:port`).
    pub fn set_backend(&self, addr: &str) {
        *self.backend.lock().unwrap() = addr.to_owned();
    }

    /// `https://localhost:PORT/`.
    pub fn url(&self) -> String {
        let port = self.fixture.addr.rsplit(':').next().unwrap();
        format!("https://localhost:{port}/")
    }
}

/// An HTTP proxy that only tunnels (`CONNECT`), recording each target.
pub struct ConnectProxy {
    pub fixture: Fixture,
    pub tunnels: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let seen = tunnels.clone();
        let fixture = serve(move |mut socket| {
            let seen = seen.clone();
            async move {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    let Ok(b) = socket.read_u8().await else {
                        return;
                    };
                    head.push(b);
                    if head.len() > 16 * 1024 {
                        return;
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut words = head.split_whitespace();
                if words.next() != Some("CONNECT") {
                    let _ = socket
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let target = words.next().unwrap_or_default().to_owned();
                seen.lock().unwrap().push(target.clone());
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    let _ = socket
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                if socket
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
            }
        });
        ConnectProxy { fixture, tunnels }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.fixture.addr)
    }

    pub fn tunnelled(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}
