//! The token every control call must carry, checked in constant time, so
//! how long a refusal takes says nothing of how much of a guess was right.

use std::{fmt, sync::Arc};

use subtle::ConstantTimeEq as _;
use tonic::{Request, Status, service::Interceptor};

/// The header a control call carries its token in, as `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// `CONTROL_TOKEN`: what a control call must present. Never shown, in
/// logs or `Debug`.
#[derive(Clone)]
pub struct ControlToken {
    /// `Bearer <token>`, the header's whole expected value.
    expected: Arc<[u8]>,
}

impl fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlToken(hidden)")
    }
}

impl ControlToken {
    /// The token `secret`, or `None` for an empty one: the control API is
    /// then off.
    pub fn new(secret: &str) -> Option<ControlToken> {
        let secret = secret.trim();
        (!secret.is_empty()).then(|| ControlToken {
            expected: format!("Bearer {secret}").into_bytes().into(),
        })
    }

    /// Whether `presented`, a whole `authorization` value, is this token.
    /// The comparison takes as long whatever the bytes; only a length that
    /// differs ends it early, and the length is no secret worth keeping.
    pub fn admits(&self, presented: &[u8]) -> bool {
        presented.ct_eq(&self.expected).into()
    }
}

impl Interceptor for ControlToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let presented = request.metadata().get(AUTHORIZATION);
        match presented {
            Some(value) if self.admits(value.as_bytes()) => Ok(request),
            Some(_) => {
                tracing::warn!("a control call was refused: its token is wrong");
                Err(Status::unauthenticated(
                    "the control token is wrong: send `authorization: Bearer <CONTROL_TOKEN>`",
                ))
            }
            None => {
                tracing::warn!("a control call was refused: it carried no token");
                Err(Status::unauthenticated(
                    "the control API needs a token: send `authorization: Bearer <CONTROL_TOKEN>`",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_whole_token_is_admitted() {
        assert!(ControlToken::new("  ").is_none(), "empty is off");
        let token = ControlToken::new("s3cret").unwrap();
        assert!(token.admits(b"Bearer s3cret"));
        for wrong in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret ",
            b"bearer s3cret",
            b"s3cret",
            b"",
        ] {
            assert!(!token.admits(wrong), "{:?}", String::from_utf8_lossy(wrong));
        }
        assert_eq!(format!("{token:?}"), "ControlToken(hidden)");
    }

    #[test]
    fn a_call_without_the_token_is_unauthenticated() {
        let mut token = ControlToken::new("s3cret").unwrap();
        let refused = token.call(Request::new(())).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert(AUTHORIZATION, "Bearer guess".parse().unwrap());
        assert_eq!(
            token.call(wrong).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let mut right = Request::new(());
        right
            .metadata_mut()
            .insert(AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(token.call(right).is_ok());
    }
}
