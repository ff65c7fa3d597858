//! Who may do what, on every Riffle listener: one model for serve, ingest's HTTP events,
//! the offline server and the console.
//!
//! - [`token`]: bearer tokens made (`riffle token new`) and known by their SHA-256 only.
//! - [`grants`]: a principal's scopes compiled into what it may read, write and send, so a
//!   check is a few array reads.
//! - [`gate`]: the one door: a request's `Authorization` header to a [`Caller`] (or a
//!   [`Denial`]: 401, 429), then each action checked against the caller's grants (403
//!   naming the scope it lacks). A token is looked up by its hash: no allocation, no
//!   comparison with every principal.
//! - [`jwt`]: JWT bearer tokens from an identity provider (`[auth.jwt]`): signature
//!   against the JWKS key of the token's `kid`, expiry, issuer and audience checked, roles
//!   mapped to scopes; a verified token remembered by its hash until it expires.
//! - [`denial`]: refusals as HTTP answers (`WWW-Authenticate`, `Retry-After`).
//! - [`exposure`]: no listener on a non-loopback address without credentials, unless
//!   the operator allows it.
//! - [`audit`]: every write, accepted event batch, admin action and denial as one JSON
//!   line, written off the request path and rotated by size.
//! - [`metrics`]: decisions counted per principal (label values only from the registry).
//!
//! No token, hash or JWT is ever written to a log, a metric, an error or the audit log:
//! principals are named by their `name`.
#![forbid(unsafe_code)]

pub mod audit;
pub mod denial;
pub mod exposure;
pub mod gate;
pub mod grants;
pub mod jwt;
pub mod metrics;
pub mod token;

pub use audit::{AuditEntry, AuditLog};
pub use denial::Denial;
pub use exposure::{check_exposure, Exposure};
pub use gate::{Caller, Gate, Route};
pub use grants::Grants;
pub use jwt::{JwtVerifier, RoleSet};
