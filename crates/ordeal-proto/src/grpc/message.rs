//! A stream's request and response as messages: gRPC calls (etcd's KV ones as key-value
//! operations), plain HTTP/2 requests, resets.

use super::{etcd, frames, Half};
use crate::{summarize, KvRequest, KvResponse, Message, Role};

/// Most characters of a grpc-message shown.
const MAX_STATUS_MESSAGE: usize = 200;

/// The request of stream `id`, from what its client sent.
pub(super) fn request(id: u32, half: &Half) -> Message {
    let (op, text, kv) = if let (Some(path), true) = (&half.path, looks_grpc(half)) {
        grpc_request(path, &half.data)
    } else if half.path.is_none() {
        // Its header block referred to table entries added in bytes not seen.
        ("?".into(), "? (headers not decoded)".into(), None)
    } else {
        let path = half.path.as_deref().unwrap_or_default();
        let op = format!("{} {path}", half.method.as_deref().unwrap_or("?"));
        let text = with_body(&op, half);
        (op, text, None)
    };
    let mut m = Message::new(Role::Request, op, text);
    m.stream = Some(id as u64);
    m.kv_request = kv;
    m.truncated = half.truncated;
    m
}

/// The response of stream `id`; `request` is what its client sent (empty if not seen).
pub(super) fn response(id: u32, request: &Half, response: &Half) -> Message {
    let grpc = response.grpc_status.is_some()
        || is_grpc(&response.content_type)
        || is_grpc(&request.content_type);
    let (op, text, kv) = if grpc {
        grpc_response(request, response)
    } else {
        let op = response.status.clone().unwrap_or_else(|| "?".into());
        let text = with_body(&op, response);
        (op, text, None)
    };
    let mut m = Message::new(Role::Response, op, text);
    m.stream = Some(id as u64);
    m.kv_response = kv;
    m.truncated = response.truncated;
    m
}

/// A server's RST_STREAM: the request's only answer, which says nothing of its effect.
pub(super) fn reset(id: u32, code: u32) -> Message {
    let text = format!("RST_STREAM {code} ({})", frames::error_name(code));
    let mut m = Message::new(Role::Response, "RST_STREAM", text);
    m.stream = Some(id as u64);
    m.kv_response = Some(KvResponse::Unknown);
    m
}

/// A gRPC request: its content-type says so or, when it did not decode, its path has the
/// shape of a gRPC method's (`/package.Service/Method`).
fn looks_grpc(half: &Half) -> bool {
    let method_path = |p: &str| {
        p.strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .is_some_and(|(service, method)| service.contains('.') && !method.is_empty())
    };
    is_grpc(&half.content_type)
        || half.content_type.is_none()
            && half.headers_partial
            && half.path.as_deref().is_some_and(method_path)
}

fn is_grpc(content_type: &Option<String>) -> bool {
    content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/grpc"))
}

/// `text` and a summary of the DATA, if any.
fn with_body(text: &str, half: &Half) -> String {
    if half.data_len == 0 {
        return text.to_string();
    }
    let body = summarize(&half.data, half.data_len as usize);
    format!("{text} {}", body.text)
}

/// The service (without its package) and method of an etcd call's path
/// (`/etcdserverpb.KV/Put` → `KV`, `Put`).
fn etcd_call(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix("/etcdserverpb.")?.split_once('/')?;
    Some((service, method))
}

/// The first gRPC message of a stream's DATA: 1 byte compressed flag, 4 bytes length, the
/// message. `None` when there is none; `Some((length, None))` when it is compressed.
fn grpc_message(data: &[u8]) -> Option<(u32, Option<&[u8]>)> {
    let head = data.get(..5)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if head[0] != 0 {
        return Some((len, None));
    }
    let end = data.len().min(5usize.saturating_add(len as usize));
    Some((len, Some(&data[5..end])))
}

/// Whether a gRPC request's first message is all there.
pub(super) fn first_message_whole(half: &Half) -> bool {
    looks_grpc(half)
        && grpc_message(&half.data).is_some_and(|(len, _)| half.data.len() - 5 >= len as usize)
}

fn grpc_request(path: &str, data: &[u8]) -> (String, String, Option<KvRequest>) {
    let message = grpc_message(data);
    let Some((service, method)) = etcd_call(path) else {
        let text = match message {
            Some((len, _)) => format!("{path} ({len} bytes)"),
            None => path.to_string(),
        };
        return (path.to_string(), text, None);
    };
    let op = format!("etcd.{method}");
    match message {
        Some((_, Some(msg))) => match etcd::request(service, method, msg) {
            Some((text, kv)) => (op, text, kv),
            None => (op.clone(), op, None),
        },
        Some((len, None)) => (op.clone(), format!("{op} (compressed, {len} bytes)"), None),
        None => (op.clone(), op, None),
    }
}

fn grpc_response(request: &Half, response: &Half) -> (String, String, Option<KvResponse>) {
    let code = response
        .grpc_status
        .as_deref()
        .map(|s| s.trim().parse::<u32>());
    match code {
        Some(Ok(0)) => {
            let call = request.path.as_deref().and_then(etcd_call);
            let decoded = call.and_then(|(service, method)| match grpc_message(&response.data) {
                Some((_, Some(msg))) => etcd::response(service, method, msg),
                _ => None,
            });
            match decoded {
                Some((text, kv)) => ("OK".into(), text, Some(kv)),
                None => ("OK".into(), "grpc-status 0".into(), None),
            }
        }
        Some(Ok(code)) => {
            let name = status_name(code);
            let mut text = format!("grpc-status {code} ({name})");
            let message = response.grpc_message.as_deref().map(percent_decode);
            if let Some(message) = message.filter(|m| !m.is_empty()) {
                text.push_str(": ");
                text.push_str(&message);
            }
            (name.into(), text, Some(outcome(code)))
        }
        // No trailers seen (cut, or an HTTP error from something in between): no outcome.
        _ => {
            let status = response.status.as_deref().unwrap_or("?");
            let text = format!("{status} without grpc-status");
            (status.into(), text, Some(KvResponse::Unknown))
        }
    }
}

/// gRPC status codes (grpc/doc/statuscodes.md).
fn status_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

/// What an error status says of the call's effect. A status on the wire comes from the
/// server (the client's own deadlines and cancels never cross it). `Fail` only for codes a
/// server gives for a request it refused before acting: etcd sends INVALID_ARGUMENT (empty
/// key, too many ops, request too large), NOT_FOUND (no such lease: the put is not applied),
/// PERMISSION_DENIED, RESOURCE_EXHAUSTED (no space, too many requests: refused before the
/// proposal), FAILED_PRECONDITION (not leader, not for learners), OUT_OF_RANGE (compacted or
/// future revision); gRPC itself ALREADY_EXISTS, UNIMPLEMENTED, UNAUTHENTICATED. Everything
/// else may have happened: etcd's request timeouts, lost leaders and stopped servers are
/// UNAVAILABLE after the proposal may have been committed, and CANCELLED, DEADLINE_EXCEEDED,
/// UNKNOWN, ABORTED, INTERNAL, DATA_LOSS say nothing either way.
fn outcome(code: u32) -> KvResponse {
    match code {
        3 | 5 | 6 | 7 | 8 | 9 | 11 | 12 | 16 => KvResponse::Fail,
        _ => KvResponse::Unknown,
    }
}

/// A grpc-message as sent: percent-encoded UTF-8 (`%20` for a space), at most
/// [`MAX_STATUS_MESSAGE`] characters shown.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&out);
    match text.char_indices().nth(MAX_STATUS_MESSAGE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_are_percent_decoded_and_cut() {
        assert_eq!(
            percent_decode("etcdserver:%20request%20timed%20out"),
            "etcdserver: request timed out"
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%e2%86%92"), "%zz→");
        let long = "x".repeat(300);
        assert_eq!(percent_decode(&long), format!("{}…", "x".repeat(200)));
    }

    #[test]
    fn outcomes_are_fail_only_when_certain() {
        assert_eq!(outcome(14), KvResponse::Unknown);
        assert_eq!(outcome(4), KvResponse::Unknown);
        assert_eq!(outcome(5), KvResponse::Fail);
        assert_eq!(outcome(99), KvResponse::Unknown);
        assert_eq!(status_name(14), "UNAVAILABLE");
    }

    #[test]
    fn responses_without_a_known_request_are_generic() {
        let response = Half {
            grpc_status: Some("0".into()),
            ..Half::default()
        };
        let m = super::response(3, &Half::default(), &response);
        assert_eq!(
            (m.op.as_str(), m.text.as_str(), m.stream),
            ("OK", "grpc-status 0", Some(3))
        );
        let cut = Half {
            status: Some("200".into()),
            content_type: Some("application/grpc".into()),
            ..Half::default()
        };
        let m = super::response(3, &Half::default(), &cut);
        assert_eq!(
            (m.text.as_str(), m.kv_response),
            ("200 without grpc-status", Some(KvResponse::Unknown))
        );
    }
}
