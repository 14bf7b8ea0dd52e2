//! Trust in exact certificates: a server that presents, byte for byte, a certificate the user
//! gave (`-cert`, or `SSL_CERT_FILE`) is that server. Any other certificate goes to the
//! platform verifier, which knows the given certificates as extra roots.
//!
//! Why: `openssl req -x509` makes a self-signed certificate marked `CA:TRUE`, and WebPKI
//! refuses a CA certificate as a server's own (`CaUsedAsEndEntity`) even when it is a trusted
//! root, so passing the server's own certificate with `-cert` was refused.
//!
//! What is checked for an exact match: that the server holds the certificate's private key
//! (the handshake signature, verified with the provider's algorithms), and, when the
//! certificate names hosts in its subject alternative names, that one of them is the host
//! dialled: a certificate given for one server is not trusted for another, whose key its
//! holder may also have. Its basic constraints are not checked, nor are its dates: giving
//! the exact certificate is the user's decision to trust it, as pinning a key is, and the
//! user decides when to stop, by changing what they give. A certificate that names no host
//! (hand-made, with a CN only, which WebPKI does not read) is trusted for whatever host
//! presents it, which is what a user who gives it with `-cert` means.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Accepts the exact certificates in `pinned`; defers everything else to `platform`, or,
/// without one (`-noCertificateCheck`), accepts it too. Either way the handshake's
/// signature is checked, so the connection is encrypted to whoever holds the key.
#[derive(Debug)]
pub(crate) struct ExactOrPlatform<V> {
    pub(crate) pinned: Vec<CertificateDer<'static>>,
    pub(crate) platform: Option<V>,
    pub(crate) provider: Arc<CryptoProvider>,
}

impl<V: ServerCertVerifier> ServerCertVerifier for ExactOrPlatform<V> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pinned| pinned.as_ref() == end_entity.as_ref())
        {
            names_allow(end_entity, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.platform {
            Some(platform) => {
                platform.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    // The handshake signatures are checked the same way whichever path accepted the
    // certificate: with the provider's algorithms, against the presented certificate.
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An exact certificate that names hosts (subject alternative names) must name the one the
/// client dials: a certificate given for one server is not trusted for another whose key
/// its holder may also have. One that names none (a hand-made certificate with a CN only,
/// which WebPKI does not read) is the user's word for whatever server presents it.
fn names_allow(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(e),
        )))
    })?;
    match parsed.verify_is_valid_for_subject_name(server_name) {
        Ok(()) => Ok(()),
        Err(webpki::Error::CertNotValidForName(context)) if context.presented.is_empty() => Ok(()),
        Err(webpki::Error::CertNotValidForName(context)) => Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext {
                expected: server_name.to_owned(),
                presented: context.presented,
            },
        )),
        Err(e) => Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(e))),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UntrustedCertificate;

    /// A self-signed `CA:TRUE` certificate for `name`, like `openssl req -x509` makes.
    fn self_signed_ca(name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn verifier(
        pinned: &[CertificateDer<'static>],
    ) -> ExactOrPlatform<rustls_platform_verifier::Verifier> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(
            pinned.to_vec(),
            provider.clone(),
        )
        .unwrap();
        ExactOrPlatform {
            pinned: pinned.to_vec(),
            platform: Some(platform),
            provider,
        }
    }

    fn verify(
        verifier: &impl ServerCertVerifier,
        cert: &CertificateDer<'_>,
        name: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verifier.verify_server_cert(
            cert,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
    }

    #[test]
    fn the_exact_certificate_is_trusted_whatever_its_constraints_for_the_host_it_names() {
        let cert = self_signed_ca("localhost");
        let v = verifier(std::slice::from_ref(&cert));
        verify(&v, &cert, "localhost").unwrap();
        // Not for another host: its key's holder could be another server.
        let refused = verify(&v, &cert, "ci.example.com").unwrap_err();
        assert!(
            matches!(
                refused,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{refused:?}"
        );
        // What the platform verifier alone says of it, even as a trusted root.
        let refused = verify(v.platform.as_ref().unwrap(), &cert, "localhost").unwrap_err();
        let untrusted = UntrustedCertificate::from_rustls(&refused).unwrap();
        assert!(
            untrusted.reason.starts_with("it is a CA certificate"),
            "{untrusted}"
        );
    }

    #[test]
    fn an_exact_certificate_that_names_no_host_is_trusted_for_any() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ci.example.com");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap().der().clone();
        let v = verifier(std::slice::from_ref(&cert));
        verify(&v, &cert, "ci.example.com").unwrap();
        verify(&v, &cert, "127.0.0.1").unwrap();
    }

    #[test]
    fn another_certificate_goes_to_the_platform_verifier() {
        let pinned = self_signed_ca("localhost");
        let other = self_signed_ca("localhost");
        let v = verifier(&[pinned]);
        let refused = verify(&v, &other, "localhost").unwrap_err();
        assert!(
            UntrustedCertificate::from_rustls(&refused).is_some(),
            "{refused}"
        );
    }
}
