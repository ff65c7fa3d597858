//! No accidental open door: a listener bound to an address other than loopback, with no
//! principal and no token, would let anyone on the network read and write features (or
//! feed events). That is refused unless the operator says it is meant
//! (`--allow-unauthenticated` or `auth.allow_unauthenticated = true`), and then said at
//! start.

use std::net::SocketAddr;

use crate::gate::Gate;

/// What a listener's address and credentials amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// Credentials are asked for, or only this machine can connect.
    Guarded,
    /// Open to the network, as the operator allowed: say so.
    OpenAllowed(String),
}

/// Whether listener `listener` (`riffle serve`, ...) may serve on `addr` with `gate`;
/// `allow` is `--allow-unauthenticated`. `Err` says why not and what to do, for an exit 2.
pub fn check_exposure(
    listener: &str,
    addr: SocketAddr,
    gate: &Gate,
    allow: bool,
) -> Result<Exposure, String> {
    if addr.ip().is_loopback() || !gate.is_open() {
        return Ok(Exposure::Guarded);
    }
    if allow || gate.allows_unauthenticated() {
        return Ok(Exposure::OpenAllowed(format!(
            "{listener} on {addr} is open to the network: anyone who reaches it may read, write and send events (no principal, no token; allowed by --allow-unauthenticated or auth.allow_unauthenticated)"
        )));
    }
    Err(format!(
        "{listener} would listen on {addr}, which is not loopback, with no principal and no token: anyone who reaches it could write features and feed events. Declare [[auth.principals]] (`riffle token new NAME --scope …` prints one), or set the write token, or pass --allow-unauthenticated if the network in front is trusted"
    ))
}
