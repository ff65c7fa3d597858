//! The door every listener's routes go through. [`Gate::authenticate`] turns a request's
//! `Authorization` header into a [`Caller`] (a principal, found by the SHA-256 of its
//! token in a hash map; else, with `[auth.jwt]`, the roles of a JWT the identity provider
//! signed; or anonymous where the route is open), refusing a missing, malformed, unknown or
//! unverifiable credential (401) and a principal past its rate (429); then
//! [`Gate::may_read`], [`Gate::may_write`], [`Gate::may_ingest`], [`Gate::may_admin`] and
//! [`Gate::may_scrape`] check the action against the caller's grants (403 naming the scope
//! it lacks). Each decision is counted per principal; writes, accepted event batches, admin
//! actions and denials go to the audit log.
//!
//! A route class is open (anonymous callers may use it) only when no credential could be
//! asked for: no principal at all for reads, writes, events and admin, except that the
//! legacy token (`serve.write_token_env`) closes writes and events, and reads too with
//! `serve.read_requires_token`; `[auth.jwt]` closes them all, like a principal.
//! `/metrics` is open unless `auth.protect_metrics`.
//!
//! A JWT caller may do what any of its mapped roles may (the union of their scopes); it is
//! named, in metrics and the audit log, `jwt:<role>` after its first mapped role, or `jwt`
//! with none (then every action is 403). Names come from the registry only, never from the
//! token (not even its `sub`), so no caller can grow the metrics' series.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use riffle_registry::{GroupId, ReadScope, Registry, Scope, TokenDigest};

use crate::audit::{AuditEntry, AuditLog};
use crate::denial::Denial;
use crate::grants::Grants;
use crate::jwt::{JwtVerifier, RoleSet};
use crate::metrics::AuthMetrics;
use crate::token::{self, Presented};

/// The kind of route a request is for: what decides whether an anonymous caller may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Read,
    Write,
    Ingest,
    Admin,
    Metrics,
}

/// Who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No credential, on a route that is open.
    Anonymous,
    /// The principal at this index of the gate.
    Principal(usize),
    /// A verified JWT with these roles of `[auth.jwt.roles]`.
    Jwt(RoleSet),
}

/// The name of the principal `serve.write_token_env`'s token stands for.
pub const LEGACY_PRINCIPAL: &str = "write-token";

/// One principal, ready to check.
struct Known {
    name: String,
    grants: Grants,
    limiter: Option<DefaultDirectRateLimiter>,
}

/// `[auth.jwt]`, ready to check.
struct JwtDoor {
    verifier: Arc<JwtVerifier>,
    /// Per role of `[auth.jwt.roles]`.
    grants: Vec<Grants>,
    /// `jwt:<role>` per role, then `jwt` (no mapped role).
    labels: Vec<String>,
}

/// Every principal of the registry (and the legacy write token), by token digest.
pub struct Gate {
    registry: Arc<Registry>,
    by_digest: foldhash::HashMap<TokenDigest, usize>,
    principals: Vec<Known>,
    jwt: Option<JwtDoor>,
    open: OpenRoutes,
    /// Whatever an anonymous caller on an open route may do.
    anonymous: Grants,
    listener: &'static str,
    audit: Option<AuditLog>,
    pub metrics: AuthMetrics,
}

#[derive(Debug, Clone, Copy)]
struct OpenRoutes {
    read: bool,
    write: bool,
    ingest: bool,
    admin: bool,
    metrics: bool,
}

impl Gate {
    /// The gate of listener `listener` (`serve`, `ingest`, ...) for `registry`'s
    /// principals, plus the legacy `legacy_token` (the value of `serve.write_token_env`)
    /// as principal [`LEGACY_PRINCIPAL`] with `write` and `ingest` (and `read` with
    /// `serve.read_requires_token`).
    pub fn new(
        registry: Arc<Registry>,
        legacy_token: Option<&str>,
        listener: &'static str,
    ) -> Gate {
        let mut principals: Vec<Known> = Vec::new();
        let mut by_digest = foldhash::HashMap::default();
        for p in &registry.auth.principals {
            by_digest.insert(p.token_sha256, principals.len());
            principals.push(Known {
                name: p.name.clone(),
                grants: Grants::of(&registry, &p.scopes),
                limiter: p.rate.and_then(limiter),
            });
        }
        let legacy = legacy_token.filter(|t| !t.is_empty());
        let reads_need_legacy = legacy.is_some() && registry.serve.read_requires_token;
        if let Some(token) = legacy {
            let mut scopes = vec![Scope::Write(None), Scope::Ingest(None)];
            if registry.serve.read_requires_token {
                scopes.push(Scope::Read(ReadScope::All));
            }
            by_digest
                .entry(token::digest(token))
                .or_insert(principals.len());
            principals.push(Known {
                name: LEGACY_PRINCIPAL.into(),
                grants: Grants::of(&registry, &scopes),
                limiter: None,
            });
        }
        let jwt = registry.auth.jwt.as_ref().map(|settings| JwtDoor {
            verifier: Arc::new(JwtVerifier::new(settings)),
            grants: settings
                .roles
                .iter()
                .map(|r| Grants::of(&registry, &r.scopes))
                .collect(),
            labels: settings
                .roles
                .iter()
                .map(|r| format!("jwt:{}", r.name))
                .chain(["jwt".to_owned()])
                .collect(),
        });
        let declared = !registry.auth.principals.is_empty() || jwt.is_some();
        let open = OpenRoutes {
            read: !declared && !reads_need_legacy,
            write: !declared && legacy.is_none(),
            ingest: !declared && legacy.is_none(),
            admin: !declared && legacy.is_none(),
            metrics: !registry.auth.protect_metrics,
        };
        let anonymous = Grants::of(
            &registry,
            &[
                (open.read, Scope::Read(ReadScope::All)),
                (open.write, Scope::Write(None)),
                (open.ingest, Scope::Ingest(None)),
                (open.admin, Scope::Admin),
                (open.metrics, Scope::Metrics),
            ]
            .into_iter()
            .filter_map(|(open, scope)| open.then_some(scope))
            .collect::<Vec<_>>(),
        );
        let names: Vec<&str> = principals.iter().map(|p| p.name.as_str()).collect();
        let jwt_names: Vec<&str> = jwt
            .iter()
            .flat_map(|j| j.labels.iter().map(String::as_str))
            .collect();
        let metrics = AuthMetrics::new(&names, &jwt_names);
        Gate {
            registry,
            by_digest,
            principals,
            jwt,
            open,
            anonymous,
            listener,
            audit: None,
            metrics,
        }
    }

    /// [`Gate::new`] with the audit log `auth.audit_log` names, if any, opened (appended
    /// to) and its writer started; and with `[auth.jwt]`, the JWKS loaded (an error if it
    /// cannot be) and its refresh task started.
    pub async fn open(
        registry: Arc<Registry>,
        legacy_token: Option<&str>,
        listener: &'static str,
    ) -> std::io::Result<Gate> {
        let audit = registry.auth.audit_log.clone();
        let gate = Gate::new(registry, legacy_token, listener);
        if let Some(jwt) = &gate.jwt {
            jwt.verifier
                .refresh()
                .await
                .map_err(|e| std::io::Error::other(format!("auth.jwt.jwks: {e}")))?;
            // Detached: it ends by itself once the gate is dropped.
            drop(jwt.verifier.spawn_refresh());
        }
        match audit {
            Some(settings) => {
                let log =
                    AuditLog::open(&settings, gate.metrics.audit_dropped.clone()).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!("auth.audit_log {}: {e}", settings.path.display()),
                        )
                    })?;
                Ok(gate.with_audit(log))
            }
            None => Ok(gate),
        }
    }

    /// `auth.allow_unauthenticated`.
    pub fn allows_unauthenticated(&self) -> bool {
        self.registry.auth.allow_unauthenticated
    }

    /// Writes decisions worth keeping to `audit`.
    pub fn with_audit(mut self, audit: AuditLog) -> Gate {
        self.audit = Some(audit);
        self
    }

    /// True when no credential exists at all: every data route is open to anyone.
    pub fn is_open(&self) -> bool {
        self.principals.is_empty() && self.jwt.is_none()
    }

    /// How callers are known, as `/health` reports it: `open` (no credential at all: every
    /// data route is open), `token` (the legacy write token only), `principals`, `jwt`
    /// (identity provider tokens, and perhaps the legacy token), `principals+jwt`.
    pub fn mode(&self) -> &'static str {
        let principals = !self.registry.auth.principals.is_empty();
        match (principals, self.jwt.is_some()) {
            (true, true) => "principals+jwt",
            (false, true) => "jwt",
            (true, false) => "principals",
            (false, false) if self.principals.is_empty() => "open",
            (false, false) => "token",
        }
    }

    /// The JWT verifier of `[auth.jwt]`, if any.
    pub fn jwt(&self) -> Option<&Arc<JwtVerifier>> {
        self.jwt.as_ref().map(|j| &j.verifier)
    }

    /// Whether an anonymous caller may use `route`.
    pub fn route_is_open(&self, route: Route) -> bool {
        match route {
            Route::Read => self.open.read,
            Route::Write => self.open.write,
            Route::Ingest => self.open.ingest,
            Route::Admin => self.open.admin,
            Route::Metrics => self.open.metrics,
        }
    }

    /// Who is calling a `route` with these headers, or why not. An open route ignores
    /// whatever is presented; a closed one needs a known token, within its rate.
    pub fn authenticate(&self, headers: &HeaderMap, route: Route) -> Result<Caller, Denial> {
        if self.route_is_open(route) {
            return Ok(Caller::Anonymous);
        }
        let denied = |denial: Denial| {
            self.refused(
                self.metrics.unknown(),
                "unknown",
                route_action(route),
                "",
                &denial,
            );
            Err(denial)
        };
        let token = match token::presented(headers) {
            Presented::Bearer(token) => token,
            Presented::Nothing => return denied(Denial::Missing),
            Presented::Malformed => return denied(Denial::Malformed),
        };
        let digest = token::digest(token);
        let Some(&index) = self.by_digest.get(&digest) else {
            return match &self.jwt {
                // A JWT is three dot-separated parts; anything else is just unknown.
                Some(jwt) if token.bytes().filter(|&b| b == b'.').count() == 2 => {
                    match jwt.verifier.verify(token, &digest) {
                        Ok(roles) => Ok(Caller::Jwt(roles)),
                        Err(why) => {
                            tracing::debug!(
                                listener = self.listener,
                                reason = why.reason(),
                                "bearer JWT refused"
                            );
                            denied(Denial::Invalid)
                        }
                    }
                }
                _ => denied(Denial::Unknown),
            };
        };
        let known = &self.principals[index];
        if let Some(limiter) = &known.limiter {
            if let Err(not_until) = limiter.check() {
                let denial = Denial::Limited {
                    principal: known.name.clone(),
                    retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                };
                self.metrics.count(index, denial.outcome());
                return Err(denial);
            }
        }
        Ok(Caller::Principal(index))
    }

    /// The caller's name, as the audit log and metrics give it.
    pub fn name(&self, caller: Caller) -> &str {
        match caller {
            Caller::Anonymous => "anonymous",
            Caller::Principal(i) => &self.principals[i].name,
            Caller::Jwt(roles) => self.jwt.as_ref().map_or("jwt", |j| {
                let i = roles.first().unwrap_or(j.labels.len() - 1);
                j.labels.get(i).map_or("jwt", String::as_str)
            }),
        }
    }

    /// The name of source `source` (an index into the registry's sources), for audit lines.
    pub fn source_name(&self, source: usize) -> &str {
        self.registry
            .sources
            .get(source)
            .map_or("", |s| s.name.as_str())
    }

    /// Whether `caller`'s grants (any of a JWT's roles') pass `test`.
    fn may(&self, caller: Caller, test: impl Fn(&Grants) -> bool) -> bool {
        match caller {
            Caller::Anonymous => test(&self.anonymous),
            Caller::Principal(i) => test(&self.principals[i].grants),
            Caller::Jwt(roles) => self
                .jwt
                .as_ref()
                .is_some_and(|j| roles.iter().any(|r| j.grants.get(r).is_some_and(&test))),
        }
    }

    fn slot(&self, caller: Caller) -> usize {
        match caller {
            Caller::Anonymous => self.metrics.anonymous(),
            Caller::Principal(i) => i,
            // The JWT labels follow the principals' in the metrics.
            Caller::Jwt(roles) => {
                let labels = self.jwt.as_ref().map_or(1, |j| j.labels.len());
                self.principals.len() + roles.first().unwrap_or(labels - 1)
            }
        }
    }

    /// Reading every one of `groups` (a request is allowed only whole).
    pub fn may_read(
        &self,
        caller: Caller,
        groups: impl IntoIterator<Item = GroupId>,
    ) -> Result<(), Denial> {
        let unreadable = groups
            .into_iter()
            .find(|&g| !self.may(caller, |grants| grants.may_read(g)));
        match unreadable {
            None => self.allowed(caller),
            Some(g) => self.forbid(caller, "read", Scope::Read(ReadScope::Group(g))),
        }
    }

    /// Writing rows of `group`.
    pub fn may_write(&self, caller: Caller, group: GroupId) -> Result<(), Denial> {
        if self.may(caller, |grants| grants.may_write(group)) {
            self.allowed(caller)
        } else {
            self.forbid(caller, "write", Scope::Write(Some(group)))
        }
    }

    /// Sending events of `source` (an index into `Registry::sources`).
    pub fn may_ingest(&self, caller: Caller, source: usize) -> Result<(), Denial> {
        if self.may(caller, |grants| grants.may_ingest(source)) {
            self.allowed(caller)
        } else {
            self.forbid(caller, "ingest", Scope::Ingest(Some(source)))
        }
    }

    /// An operator action.
    pub fn may_admin(&self, caller: Caller) -> Result<(), Denial> {
        if self.may(caller, Grants::admin) {
            self.allowed(caller)
        } else {
            self.forbid(caller, "admin", Scope::Admin)
        }
    }

    /// `GET /metrics`.
    pub fn may_scrape(&self, caller: Caller) -> Result<(), Denial> {
        if self.may(caller, Grants::metrics) {
            self.allowed(caller)
        } else {
            self.forbid(caller, "metrics", Scope::Metrics)
        }
    }

    /// Appends a completed action (a write of `count` rows, a batch of `count` events
    /// accepted, an admin action) to the audit log.
    pub fn audit_done(&self, caller: Caller, action: &'static str, target: &str, count: u64) {
        if let Some(audit) = &self.audit {
            audit.record(AuditEntry::now(
                self.listener,
                self.name(caller),
                action,
                target,
                count,
                "ok",
            ));
        }
    }

    fn allowed(&self, caller: Caller) -> Result<(), Denial> {
        self.metrics.count(self.slot(caller), "allowed");
        Ok(())
    }

    fn forbid(&self, caller: Caller, action: &'static str, lacks: Scope) -> Result<(), Denial> {
        let scope = self.registry.scope_text(&lacks);
        let denial = Denial::Forbidden {
            principal: self.name(caller).to_owned(),
            scope: scope.clone(),
        };
        self.refused(
            self.slot(caller),
            self.name(caller),
            action,
            &scope,
            &denial,
        );
        Err(denial)
    }

    fn refused(&self, slot: usize, who: &str, action: &'static str, target: &str, denial: &Denial) {
        self.metrics.count(slot, denial.outcome());
        if let Some(audit) = &self.audit {
            audit.record(AuditEntry::now(
                self.listener,
                who,
                action,
                target,
                0,
                denial.outcome(),
            ));
        }
    }
}

fn route_action(route: Route) -> &'static str {
    match route {
        Route::Read => "read",
        Route::Write => "write",
        Route::Ingest => "ingest",
        Route::Admin => "admin",
        Route::Metrics => "metrics",
    }
}

/// A token bucket of `rate` requests per second holding one second's worth (at least one).
fn limiter(rate: f64) -> Option<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate);
    let burst = NonZeroU32::new(rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32)?;
    Quota::with_period(period).map(|q| DefaultDirectRateLimiter::direct(q.allow_burst(burst)))
}
