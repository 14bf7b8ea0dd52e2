//! The rustls client configuration shared by every connection a client makes, and the
//! `-cert` option both clients take.
//!
//! Trust, for a configuration without `-noCertificateCheck`: a server certificate that is
//! exactly one of the `-cert` certificates, or one in `SSL_CERT_FILE`, is accepted as the
//! server's ([`crate::pinned`]); any other goes to rustls-platform-verifier, whose roots are
//! the platform's plus the `-cert` certificates. On Linux the platform's roots come from
//! rustls-native-certs: the system CA bundle, or, when `SSL_CERT_FILE` or `SSL_CERT_DIR` is
//! set, only the certificates there (as OpenSSL reads them).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::TransportError;
use crate::pinned::ExactOrPlatform;

/// What the user asked of certificate checking.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Certificates to trust besides the platform's roots, PEM (`-cert`): CAs, or a
    /// server's own certificate, trusted when presented exactly.
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
    let verifier = if options.no_certificate_check {
        // Any certificate: the connection is encrypted, just not authenticated.
        ExactOrPlatform {
            pinned: Vec::new(),
            platform: None,
            provider,
        }
    } else {
        let extra = match &options.extra_ca_pem {
            Some(pem) => parse_certificates(pem, "the -cert certificates")?,
            None => Vec::new(),
        };
        let mut pinned = extra.clone();
        pinned.extend(ssl_cert_file_certificates());
        let platform =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| TransportError::Tls(e.to_string()))?;
        ExactOrPlatform {
            pinned,
            platform: Some(platform),
            provider,
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates in `SSL_CERT_FILE`, to be trusted exactly as `-cert`'s are: a user who
/// points it at a server's self-signed certificate means what `-cert @FILE` means. The
/// platform verifier reads the file too, as its roots, and reports a file it cannot use;
/// here an unreadable file only means no exact matches.
fn ssl_cert_file_certificates() -> Vec<CertificateDer<'static>> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE") else {
        return Vec::new();
    };
    let Ok(pem) = std::fs::read(path) else {
        return Vec::new();
    };
    CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect()
}

/// Reads a `-cert` value as Jenkins' agent takes it: the PEM text itself, or `@FILE` for a
/// file of PEM certificates; the PEM, checked to hold at least one certificate. A bare path
/// is refused with "did you mean @PATH?": taking it as a file would make a value that
/// happens to name a file mean something else than everywhere else.
pub fn read_cert_option(value: &str) -> Result<Vec<u8>, TransportError> {
    let Some(path) = value.strip_prefix('@') else {
        let pem = value.as_bytes().to_vec();
        return match parse_certificates(&pem, "the -cert value") {
            Err(TransportError::BadCertificate(reason)) if !has_pem_marker(value) => {
                let hint = if looks_like_a_path(value) {
                    format!("did you mean @{value}?")
                } else {
                    "give the PEM text, or @FILE to read it from a file".to_owned()
                };
                Err(TransportError::BadCertificate(format!("{reason}; {hint}")))
            }
            Err(e) => Err(e),
            Ok(_) => Ok(pem),
        };
    };
    let pem = std::fs::read(path).map_err(|e| TransportError::CertFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    parse_certificates(&pem, path)?;
    Ok(pem)
}

fn has_pem_marker(value: &str) -> bool {
    value.contains("-----BEGIN")
}

/// A one-line value that names a file, or is written like a path or a certificate file name.
fn looks_like_a_path(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || value.contains('\n') {
        return false;
    }
    let path = std::path::Path::new(value);
    let certificate_extension = path.extension().is_some_and(|ext| {
        ["pem", "crt", "cer", "der"]
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known))
    });
    path.is_file() || value.contains('/') || value.contains('\\') || certificate_extension
}

/// The certificates in `pem`; `origin` names where it came from in errors.
fn parse_certificates(
    pem: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TransportError::BadCertificate(format!("{e} in {origin}")))?;
    if certs.is_empty() {
        return Err(TransportError::BadCertificate(format!(
            "no PEM certificate found in {origin}"
        )));
    }
    Ok(certs)
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

    fn a_certificate_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn cert_option_takes_pem_text_or_at_file() {
        let pem = a_certificate_pem();
        assert_eq!(read_cert_option(&pem).unwrap(), pem.as_bytes());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ci.pem");
        std::fs::write(&file, &pem).unwrap();
        let at_file = format!("@{}", file.display());
        assert_eq!(read_cert_option(&at_file).unwrap(), pem.as_bytes());
    }

    #[test]
    fn cert_option_errors_say_what_was_meant() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ci.pem");
        std::fs::write(&file, a_certificate_pem()).unwrap();
        let path = file.display().to_string();
        let message = |value: &str| read_cert_option(value).unwrap_err().to_string();
        assert_eq!(
            message(&path),
            format!(
                "invalid CA certificate: no PEM certificate found in the -cert value; did you mean @{path}?"
            )
        );
        // Written like a path, even if there is no such file.
        assert!(message("ci.crt").ends_with("; did you mean @ci.crt?"));
        assert!(message("/etc/ssl/ci").ends_with("; did you mean @/etc/ssl/ci?"));
        assert_eq!(
            message("hello"),
            "invalid CA certificate: no PEM certificate found in the -cert value; give the PEM text, or @FILE to read it from a file"
        );
        let missing = dir.path().join("missing.pem").display().to_string();
        assert!(
            message(&format!("@{missing}"))
                .starts_with(&format!("cannot read the -cert file {missing}: ")),
            "{}",
            message(&format!("@{missing}"))
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.display().to_string();
        assert_eq!(
            message(&format!("@{junk}")),
            format!("invalid CA certificate: no PEM certificate found in {junk}")
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
