//! A failover standby RTMP output: waits while the destination's other
//! endpoint is the active one, and (one output of the destination at a
//! time) probes its own endpoint so that a dead standby is a warning before
//! it is needed.

use super::redact::Redactor;
use super::{EgressError, RtmpPlan, Scheme, connection, tls_config};
use crate::egress::failover::FailoverMember;
use crate::egress::status::{EgressStatus, error_chain};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_rustls::rustls::ClientConfig;

/// Waits while this output's endpoint is the failover standby, probing it
/// (connect and handshake, then close) when [`crate::egress::standby::due`] says.
pub(super) async fn wait(
    target: &RtmpPlan,
    f: &FailoverMember,
    tls: &mut Option<Arc<ClientConfig>>,
    status: &watch::Sender<EgressStatus>,
    redactor: &Redactor,
) {
    while crate::egress::standby::due(f, status).await {
        let bound = target.connect_timeout.min(PROBE_TIMEOUT);
        let result = match tokio::time::timeout(bound, probe(target, tls)).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::ConnectTimeout { url: target.url.clone(), after: bound }),
        };
        crate::egress::standby::report(f, &target.backoff, result.map_err(|e| redactor.apply(&error_chain(&e))));
    }
}

/// Bound on one standby probe (or the connect timeout, if shorter).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

async fn probe(target: &RtmpPlan, tls: &mut Option<Arc<ClientConfig>>) -> Result<(), EgressError> {
    if target.url.scheme() == Scheme::Rtmps && tls.is_none() {
        *tls = Some(tls_config(target.ca_file.as_deref())?);
    }
    connection::probe(&target.url, tls.as_ref()).await
}
