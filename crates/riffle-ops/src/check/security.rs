//! Checklist items beyond the lesson's twenty, on who can reach the listeners: credentials
//! on every listener that faces the network ([`listener_auth`]) and TLS on them
//! ([`listener_tls`]). A listener on a loopback address is reachable from this machine
//! only; any other address (or a host name other than `localhost`) faces the network.

use std::net::SocketAddr;

use super::input::CheckInput;
use super::item::{item, with_live, Item, Outcome};

/// The section these items are listed under.
pub(super) const SECURITY: &str = "security";

/// The listeners of the registry that face the network: (name, address, TLS configured).
fn exposed(input: &CheckInput<'_>) -> Vec<(&'static str, String, bool)> {
    let reg = input.registry;
    [
        ("serve", &reg.serve.listen, reg.serve.listener.tls.is_some()),
        (
            "ingest",
            &reg.ingest.listen,
            reg.ingest.listener.tls.is_some(),
        ),
    ]
    .into_iter()
    .filter(|(_, addr, _)| !is_loopback(addr))
    .map(|(name, addr, tls)| (name, addr.clone(), tls))
    .collect()
}

fn is_loopback(addr: &str) -> bool {
    match addr.parse::<SocketAddr>() {
        Ok(socket) => socket.ip().is_loopback(),
        Err(_) => addr
            .rsplit_once(':')
            .is_some_and(|(host, _)| host == "localhost"),
    }
}

/// Every listener facing the network asks for credentials.
pub(super) fn listener_auth(input: &CheckInput<'_>) -> Item {
    let exposed = exposed(input);
    let auth = &input.registry.auth;
    let names: Vec<String> = exposed
        .iter()
        .map(|(n, a, _)| format!("{n} on {a}"))
        .collect();
    let (outcome, reason) = if exposed.is_empty() {
        (
            Outcome::Pass,
            "every listener is on a loopback address: only this machine can reach it".to_owned(),
        )
    } else if !auth.principals.is_empty() || auth.jwt.is_some() {
        let mut credentials = Vec::new();
        if !auth.principals.is_empty() {
            credentials.push(format!("{} principal(s) declared", auth.principals.len()));
        }
        if let Some(jwt) = &auth.jwt {
            credentials.push(format!("JWTs from {:?} accepted ([auth.jwt])", jwt.issuer));
        }
        (
            Outcome::Pass,
            format!(
                "{} face the network; {}: every data route needs a bearer token with its scope",
                names.join(", "),
                credentials.join(" and ")
            ),
        )
    } else if auth.allow_unauthenticated {
        (
            Outcome::Fail,
            format!(
                "{} face the network with auth.allow_unauthenticated = true and no principal: anyone who reaches them may read, write and send events",
                names.join(", ")
            ),
        )
    } else {
        (
            Outcome::Warn,
            format!(
                "{} face the network and no principal is declared: they start only with the write token ({}) set, which guards writes and events but not reads; declare [[auth.principals]] (`riffle token new NAME --scope …`)",
                names.join(", "),
                input.registry.serve.write_token_env
            ),
        )
    };
    let base = item(
        "listener_auth",
        SECURITY,
        "Credentials on every listener facing the network",
        outcome,
        reason,
    );
    with_live(base, input.live.map(live_auth))
}

/// What serve's `/health` says of its callers.
fn live_auth(live: &super::live::LiveFacts) -> (Outcome, String) {
    match &live.health {
        Ok(health) => match health["auth"].as_str() {
            Some("open") => (
                Outcome::Warn,
                format!("{} answers anyone: no principal and no token", live.target),
            ),
            Some(mode) => (
                Outcome::Pass,
                format!("{} authenticates callers ({mode})", live.target),
            ),
            None => (
                Outcome::Warn,
                format!(
                    "{}'s /health does not say how it authenticates (an older serve?)",
                    live.target
                ),
            ),
        },
        Err(e) => (Outcome::Warn, format!("/health unreadable: {e}")),
    }
}

/// Every listener facing the network speaks TLS (or says where TLS ends in front of it).
pub(super) fn listener_tls(input: &CheckInput<'_>) -> Item {
    let plain: Vec<String> = exposed(input)
        .into_iter()
        .filter(|(_, _, tls)| !tls)
        .map(|(name, addr, _)| format!("{name} on {addr}"))
        .collect();
    let (outcome, reason) = if plain.is_empty() {
        (
            Outcome::Pass,
            "every listener facing the network has tls_cert and tls_key (reloaded when renewed); loopback listeners need none".to_owned(),
        )
    } else {
        (
            Outcome::Warn,
            format!(
                "{} speak plain HTTP: bearer tokens cross the network in the clear unless TLS ends in front (a proxy or mesh); set tls_cert and tls_key (or --tls-cert/--tls-key), or confirm where TLS is terminated",
                plain.join(", ")
            ),
        )
    };
    item(
        "listener_tls",
        SECURITY,
        "TLS on every listener facing the network",
        outcome,
        reason,
    )
}
