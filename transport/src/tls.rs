//! The rustls client configuration shared by every connection a client makes, and the
//! `-cert` option both clients take.
//!
//! Trust, for a configuration without `-noCertificateCheck`: a server certificate that is
//! exactly one of the `-cert` certificates is accepted as the server's ([`crate::pinned`]);
//! any other goes to rustls-platform-verifier, whose roots are the platform's plus the
//! `-cert` certificates.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::TransportError;
use crate::pinned::ExactOrPlatform;

/// What the user asked of certificate checking.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra trusted CA certificates, PEM (`-cert`).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Trust any certificate (`-noCertificateCheck`).
    pub no_certificate_check: bool,
}

/// Installs the ring provider as rustls' process default; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// Builds the client configuration for `options`.
pub fn tls_config(options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let config = if options.no_certificate_check {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let extra = match &options.extra_ca_pem {
            Some(pem) => parse_certificates(pem)?,
            None => Vec::new(),
        };
        let pinned = extra.clone();
        let platform =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| TransportError::Tls(e.to_string()))?;
        let verifier = ExactOrPlatform {
            pinned,
            platform,
            provider,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TransportError::BadCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(TransportError::BadCertificate(
            "no PEM certificate found".into(),
        ));
    }
    Ok(certs)
}

/// `-noCertificateCheck`: accepts any certificate but still checks handshake signatures, so
/// the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_named() {
        install_crypto_provider();
        let err = tls_config(&TlsOptions {
            extra_ca_pem: Some(b"not a cert".to_vec()),
            no_certificate_check: false,
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid CA certificate"),
            "{err}"
        );
    }

    #[test]
    fn configs_build() {
        install_crypto_provider();
        tls_config(&TlsOptions::default()).unwrap();
        tls_config(&TlsOptions {
            extra_ca_pem: None,
            no_certificate_check: true,
        })
        .unwrap();
    }
}
