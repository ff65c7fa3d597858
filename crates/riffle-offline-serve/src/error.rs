//! Why the server refused a call ([`Refusal`]), and the gRPC status a client sees for it.
//!
//! Feast's client looks in an error's text for `Flight error: ` followed by a JSON detail
//! naming an exception class of its own (`{"module", "class", "message"}`), and raises that
//! exception with that message; anything else reaches the user as a bare pyarrow error after
//! a warning. So a refusal's status message is written in that form: a Feast user gets a
//! `feast.errors.FeastError` whose text says what to fix, and any other Flight client still
//! reads the message plainly.

use tonic::Status;

/// Why a call was not answered.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The client asked for something that cannot be answered as asked.
    #[error("{0}")]
    Request(String),
    /// An API of Feast's offline store that Riffle does not serve.
    #[error("{0}")]
    Unsupported(String),
    /// The server failed.
    #[error("{0}")]
    Internal(String),
    /// The auth gate refused the caller: unauthenticated, lacking a read scope, or over
    /// its rate.
    #[error("{}", .0.message())]
    Denied(riffle_auth::Denial),
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        let message = feast_error_text(&format!("riffle serve-offline: {refusal}"));
        match refusal {
            Refusal::Request(_) => Status::invalid_argument(message),
            Refusal::Unsupported(_) => Status::unimplemented(message),
            Refusal::Internal(_) => Status::internal(message),
            Refusal::Denied(denial) => match denial.status().as_u16() {
                401 => Status::unauthenticated(message),
                429 => Status::resource_exhausted(message),
                _ => Status::permission_denied(message),
            },
        }
    }
}

/// `message` as Feast's client reads a server's error: `Flight error: {JSON detail}`.
pub fn feast_error_text(message: &str) -> String {
    let detail = serde_json::json!({
        "module": "feast.errors",
        "class": "FeastError",
        "message": message,
    });
    format!("Flight error: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_carries_feasts_error_detail() {
        let status = Status::from(Refusal::Request("no group \"x\" {at all}".into()));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let text = status.message();
        let json = text.strip_prefix("Flight error: ").expect(text);
        let detail: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(detail["class"], "FeastError");
        assert_eq!(
            detail["message"],
            "riffle serve-offline: no group \"x\" {at all}"
        );
    }
}
