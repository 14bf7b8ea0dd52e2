//! Trust in exact certificates: a server that presents, byte for byte, a certificate the user
//! gave (`-cert`, or `SSL_CERT_FILE`) is that server. Any other certificate goes to the
//! platform verifier, which knows the given certificates as extra roots.
//!
//! Why: `openssl req -x509` makes a self-signed certificate marked `CA:TRUE`, and WebPKI
//! refuses a CA certificate as a server's own (`CaUsedAsEndEntity`) even when it is a trusted
//! root, so passing the server's own certificate with `-cert` was refused.
//!
//! What is checked for an exact match: only that the server holds the certificate's private
//! key (the handshake signature, verified with the provider's algorithms). Its basic
//! constraints, names and dates are not: giving the exact certificate is the user's decision
//! to trust it for this server, as pinning a key is. A name check would add nothing an
//! attacker lacks, who needs that key to present the certificate, and it would refuse the
//! many hand-made certificates that name the host only in their CN (which WebPKI does not
//! read) or under another name than the one the client dials (an IP address). Dates protect
//! against a key a CA no longer vouches for; here the user alone decides when to stop
//! trusting, by changing what they give.

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
    fn the_exact_certificate_is_trusted_whatever_its_constraints_and_name() {
        let cert = self_signed_ca("localhost");
        let v = verifier(std::slice::from_ref(&cert));
        verify(&v, &cert, "localhost").unwrap();
        verify(&v, &cert, "ci.example.com").unwrap();
        // What the platform verifier alone says of it, even as a trusted root.
        let refused = verify(v.platform.as_ref().unwrap(), &cert, "localhost").unwrap_err();
        let untrusted = UntrustedCertificate::from_rustls(&refused).unwrap();
        assert!(
            untrusted.reason.starts_with("it is a CA certificate"),
            "{untrusted}"
        );
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
