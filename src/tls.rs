//! HTTPS: the rustls server configuration, a certificate that SIGHUP swaps
//! without a restart, and who a client certificate names.
//!
//! TradingView posts only to ports 80 and 443, so the gateway can serve
//! HTTPS itself. Over HTTPS TradingView presents a client certificate (CN
//! "TradingView Webhooks", O "TradingView, Inc."); with `tls.client_ca_file`
//! set, a presented certificate is verified against that CA during the
//! handshake (an invalid one fails the handshake), and a source with
//! `client_cert` requires one whose subject matches, beside its token.
//! Clients without a certificate are still served: sources without the
//! rule do not need one.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsSettings;
use crate::sources::ClientCertRule;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server certificate in force; `reload` reads the files again.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
    settings: TlsSettings,
}

impl CertStore {
    fn load(settings: &TlsSettings) -> Result<CertifiedKey, String> {
        let chain = read_certs(&settings.cert_file, "tls.cert_file")?;
        let key = PrivateKeyDer::from_pem_file(&settings.key_file)
            .map_err(|e| format!("tls.key_file {}: {e}", settings.key_file.display()))?;
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
            format!("tls.cert_file / tls.key_file: {e} (does the key belong to the certificate?)")
        })
    }

    /// Reads the certificate and key again; on error the current pair stays.
    pub fn reload(&self) -> Result<(), String> {
        self.current.store(Arc::new(Self::load(&self.settings)?));
        Ok(())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read_certs(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{setting} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{setting} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The rustls configuration for the HTTPS listener, and the certificate
/// store a reload swaps.
pub fn server_config(settings: &TlsSettings) -> Result<(ServerConfig, Arc<CertStore>), String> {
    let store = Arc::new(CertStore {
        current: ArcSwap::from_pointee(CertStore::load(settings)?),
        settings: settings.clone(),
    });
    let verifier = match &settings.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in read_certs(path, "tls.client_ca_file")? {
                roots
                    .add(ca)
                    .map_err(|e| format!("tls.client_ca_file {}: {e}", path.display()))?;
            }
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("tls.client_ca_file {}: {e}", path.display()))?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(store.clone());
    Ok((config, store))
}

/// How a connection arrived, stored per connection by [`on_connect`].
#[derive(Debug, Clone, Default)]
pub struct ConnectionTls {
    /// The subject of the client certificate verified in the handshake.
    pub client: Option<ClientSubject>,
}

/// The parts of a certificate subject a source can require.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSubject {
    pub common_name: Option<String>,
    pub organization: Option<String>,
}

impl ClientSubject {
    /// Reads the subject of a DER certificate (already verified by rustls).
    pub fn of(cert: &[u8]) -> Option<ClientSubject> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
        let subject = cert.subject();
        let text =
            |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().ok().map(str::to_owned);
        let common_name = subject.iter_common_name().next().and_then(text);
        let organization = subject.iter_organization().next().and_then(text);
        Some(ClientSubject {
            common_name,
            organization,
        })
    }

    pub fn satisfies(&self, rule: &ClientCertRule) -> bool {
        self.common_name.as_deref() == Some(rule.common_name.as_str())
            && rule
                .organization
                .as_deref()
                .is_none_or(|o| self.organization.as_deref() == Some(o))
    }
}

/// `HttpServer::on_connect` hook: records, for a TLS connection, the
/// subject of the client certificate rustls verified.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(stream) = conn.downcast_ref::<TlsStream<TcpStream>>() {
        let (_, session) = stream.get_ref();
        let client = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| ClientSubject::of(leaf));
        ext.insert(ConnectionTls { client });
    }
}
