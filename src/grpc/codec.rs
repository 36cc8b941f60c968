//! The protobuf codec of every tokend service: prost's, except that a
//! request that does not decode (a string that is not UTF-8, a truncated or
//! mistyped field) is answered INVALID_ARGUMENT naming the field, not
//! INTERNAL. tonic follows gRPC's status code table there, but for tokend's
//! callers a malformed request is their mistake, and through the REST
//! sidecar INTERNAL would be a 500 for bad client input (a `%ff` in a query
//! parameter reaches tokend as a non-UTF-8 string).
//!
//! Every tokend RPC is unary, so a second request message in one call is
//! refused too: tonic would otherwise read it and silently drop it, and a
//! caller who sent two requests would believe both were answered.

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::domain::FieldViolation;
use crate::grpc::error::status;
use crate::service::Error;

/// [`ProstCodec`] with [`RequestDecoder`]; named in `build.rs`.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            inner: self.0.decoder(),
            decoded: false,
        }
    }
}

/// prost's decoder with decode failures turned into INVALID_ARGUMENT, and
/// at most one message per call (one decoder is made per call).
#[derive(Debug)]
pub struct RequestDecoder<U> {
    inner: ProstDecoder<U>,
    decoded: bool,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        if self.decoded {
            return Err(status(Error::from(FieldViolation::new(
                "request",
                "a unary call takes exactly one request message; a second one was sent",
            ))));
        }
        let status_of = |violation: FieldViolation| status(Error::from(violation));
        let message = self.inner.decode(buf).map_err(|status| {
            if status.code() == Code::Internal {
                status_of(decode_violation(status.message()))
            } else {
                status
            }
        })?;
        self.decoded = message.is_some();
        Ok(message)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

/// The field and reason of a prost decode error such as
/// `failed to decode Protobuf message: ListApiTokensRequest.workspace_id:
/// invalid string value: data is not UTF-8 encoded`, with the field in its
/// JSON name (`workspaceId`). prost never puts field values in the message.
pub fn decode_violation(message: &str) -> FieldViolation {
    let rest = message
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(message);
    // prost names the innermost field first, then each enclosing one.
    let mut path = Vec::new();
    let mut remainder = rest;
    while let Some((head, tail)) = remainder.split_once(": ") {
        match head.rsplit_once('.') {
            Some((message_name, name))
                if !name.is_empty()
                    && !message_name.contains(' ')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                path.push(lower_camel(name));
                remainder = tail;
            }
            _ => break,
        }
    }
    path.reverse();
    let field = if path.is_empty() {
        "request".to_owned()
    } else {
        path.join(".")
    };
    FieldViolation::new(field, format!("is not valid protobuf: {remainder}"))
}

fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_path_in_json_names() {
        let v = decode_violation(
            "failed to decode Protobuf message: ListApiTokensRequest.workspace_id: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(v.field, "workspaceId");
        assert_eq!(
            v.description,
            "is not valid protobuf: invalid string value: data is not UTF-8 encoded"
        );
        let nested = decode_violation(
            "failed to decode Protobuf message: ApiTokenRole.entity_id: UpdateApiTokenRolesRequest.roles: invalid string value: data is not UTF-8 encoded",
        );
        assert_eq!(nested.field, "roles.entityId");
    }

    #[test]
    fn falls_back_to_the_request() {
        let v = decode_violation("failed to decode Protobuf message: buffer underflow");
        assert_eq!(v.field, "request");
        assert_eq!(v.description, "is not valid protobuf: buffer underflow");
        assert_eq!(decode_violation("").field, "request");
    }
}
