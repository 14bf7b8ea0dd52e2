//! A server certificate the client does not trust, told in words with what to do about it.
//!
//! rustls reports `invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))`, deep in
//! an error chain (reqwest, hyper, an `io::Error`). [`UntrustedCertificate::find`] digs it
//! out so the agent and the CLI can say what is wrong with the certificate and which option
//! fixes it, instead of a bare connection failure.

use std::error::Error as StdError;

use rustls::CertificateError;

/// What fixes a certificate the client does not trust; both the agent and the CLI take these
/// options.
pub const CERTIFICATE_HINT: &str =
    "pass -cert @FILE with the server's certificate or its CA, or -noCertificateCheck (insecure)";

/// The server's certificate was refused; `Display` says why and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server's certificate is not trusted: {reason}; {CERTIFICATE_HINT}")]
pub struct UntrustedCertificate {
    /// What is wrong with it, in words, followed by rustls' own text.
    pub reason: String,
}

impl UntrustedCertificate {
    /// The certificate problem behind `error`, looking through its causes and through
    /// `io::Error`s that wrap one; `None` when the failure is something else.
    pub fn find(error: &(dyn StdError + 'static)) -> Option<Self> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(tls) = error.downcast_ref::<rustls::Error>() {
                return Self::from_rustls(tls);
            }
            // An io::Error's `source()` skips the error it wraps (it answers that error's own
            // source), and hyper-rustls wraps tokio-rustls' io::Error in another: step in.
            current = match error
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                Some(inner) => Some(inner),
                None => error.source(),
            };
        }
        None
    }

    /// `Some` when `error` is a refused server certificate.
    pub fn from_rustls(error: &rustls::Error) -> Option<Self> {
        let rustls::Error::InvalidCertificate(problem) = error else {
            return None;
        };
        Some(Self {
            reason: format!("{} ({error})", in_words(problem)),
        })
    }
}

fn in_words(problem: &CertificateError) -> String {
    use CertificateError::*;
    match problem {
        UnknownIssuer => "it is not issued by a CA this client trusts".into(),
        NotValidForName => "it is not valid for the host name dialled".into(),
        NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = expected.to_str();
            if presented.is_empty() {
                format!("it is not valid for {expected}: it names no host (a CN is not read)")
            } else {
                format!(
                    "it is not valid for {expected}: it names {}",
                    presented.join(", ")
                )
            }
        }
        Expired | ExpiredContext { .. } => "it has expired".into(),
        NotValidYet | NotValidYetContext { .. } => "it is not valid yet".into(),
        Revoked => "it has been revoked".into(),
        BadSignature => "its signature does not verify".into(),
        BadEncoding => "it is not a well-formed certificate".into(),
        InvalidPurpose | InvalidPurposeContext { .. } => {
            "it is not meant for a TLS server (extended key usage)".into()
        }
        Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => {
                "it is a CA certificate (CA:TRUE, as `openssl req -x509` makes by default) used as the server's own"
                    .into()
            }
            _ => "it does not verify".into(),
        },
        _ => "it does not verify".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn found_through_nested_io_errors_and_a_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);

        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        // As reqwest gets it through hyper-rustls: an io::Error inside an io::Error.
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let chained = Outer(std::io::Error::other(inner));
        let found = UntrustedCertificate::find(&chained).expect("found");
        assert_eq!(
            found.to_string(),
            format!(
                "the server's certificate is not trusted: it is not issued by a CA this client \
                 trusts (invalid peer certificate: UnknownIssuer); {CERTIFICATE_HINT}"
            )
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(UntrustedCertificate::find(&Outer(refused)), None);
        assert_eq!(
            UntrustedCertificate::from_rustls(&rustls::Error::HandshakeNotComplete),
            None
        );
    }

    #[test]
    fn a_ca_used_as_the_servers_own_is_named() {
        let error = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(webpki::Error::CaUsedAsEndEntity),
        )));
        let reason = UntrustedCertificate::from_rustls(&error).unwrap().reason;
        assert!(
            reason.starts_with("it is a CA certificate (CA:TRUE")
                && reason
                    .ends_with("(invalid peer certificate: Other(OtherError(CaUsedAsEndEntity)))"),
            "{reason}"
        );
    }
}
