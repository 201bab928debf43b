//! A failover standby output waiting to become the active endpoint,
//! whatever its protocol: one output of the destination at a time probes
//! the endpoint (the protocol's own cheap check, given as `probe`), every
//! standby output shows a `standby_down` warning while the last probe
//! failed, and the output stays a standby either way (the session is not
//! `degraded`: the active endpoint carries the stream).

use super::failover::{FailoverMember, StandbyChange};
use super::status::EgressStatus;
use crate::backoff::Backoff;
use crate::status::wire::OutputWarning;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Waits until this output should probe its endpoint (true; then
/// [`report`] the result) or its endpoint is the active one (false, the
/// warning cleared), keeping the output's warning up to date meanwhile.
/// The caller loops: `while due(..).await { report(.., probe().await) }`.
pub async fn due(f: &FailoverMember, status: &watch::Sender<EgressStatus>) -> bool {
    while !f.is_active() {
        let warning = f.standby_down().then_some(OutputWarning::StandbyDown);
        status.send_if_modified(|s| std::mem::replace(&mut s.warning, warning) != warning);
        if f.claim_probe() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    status.send_if_modified(|s| s.warning.take().is_some());
    false
}

/// The result of one probe (bounded by the caller; its error redacted: no secret).
pub fn report(f: &FailoverMember, backoff: &Backoff, result: Result<(), String>) {
    match (f.probed(result.is_ok(), backoff), result) {
        (Some(StandbyChange::WentDown), Err(e)) => warn!(
            endpoint = f.endpoint.as_str(),
            error = %e,
            "the failover standby endpoint is down: a warning (the active endpoint carries the stream); probing it with backoff"
        ),
        (Some(StandbyChange::CameBack), _) => info!(endpoint = f.endpoint.as_str(), "the failover standby endpoint is reachable again"),
        _ => {}
    }
}
