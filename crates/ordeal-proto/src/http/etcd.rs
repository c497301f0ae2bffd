//! etcd's v3 JSON gateway (grpc-gateway on the client port: `POST /v3/kv/put` and friends,
//! bytes fields in base64) read as key-value operations.

use serde_json::Value;

use super::base64;
use crate::{summarize, KvRequest, KvResponse};

/// A gateway call this decoder understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Call {
    Put,
    Range,
    Txn,
    DeleteRange,
}

impl Call {
    /// The operation's name in messages: the gRPC method's.
    pub(super) fn op(self) -> &'static str {
        match self {
            Call::Put => "etcd.Put",
            Call::Range => "etcd.Range",
            Call::Txn => "etcd.Txn",
            Call::DeleteRange => "etcd.DeleteRange",
        }
    }
}

/// The call a request is, from its method and path (without query); `/v3beta` and
/// `/v3alpha` are the prefixes of etcd 3.3 and 3.2.
pub(super) fn call(method: &[u8], path: &[u8]) -> Option<Call> {
    if method != b"POST" {
        return None;
    }
    let rest = [&b"/v3/"[..], b"/v3beta/", b"/v3alpha/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(*prefix))?;
    match rest {
        b"kv/put" => Some(Call::Put),
        b"kv/range" => Some(Call::Range),
        b"kv/txn" => Some(Call::Txn),
        b"kv/deleterange" => Some(Call::DeleteRange),
        _ => None,
    }
}

/// A field by its proto name, or by its JSON (lowerCamelCase) name, which the gateway
/// accepts too.
fn get<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        let mut camel = String::with_capacity(name.len());
        let mut upper = false;
        for c in name.chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    camel.push(c.to_ascii_uppercase());
                    upper = false;
                }
                c => camel.push(c),
            }
        }
        obj.get(camel.as_str())
    })
}

/// A bytes field; absent is empty (proto3 JSON leaves defaults out); `None` when not
/// base64.
fn bytes(obj: &Value, name: &str) -> Option<Vec<u8>> {
    match get(obj, name) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => base64::decode(s),
        Some(_) => None,
    }
}

/// An int64 field (a string in proto3 JSON, a number accepted); absent is 0.
fn int(obj: &Value, name: &str) -> i64 {
    match get(obj, name) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn flag(obj: &Value, name: &str) -> bool {
    matches!(get(obj, name), Some(Value::Bool(true)))
}

/// A list field; absent is empty; `None` when not a list.
fn list<'a>(obj: &'a Value, name: &str) -> Option<&'a [Value]> {
    match get(obj, name) {
        None | Some(Value::Null) => Some(&[]),
        Some(Value::Array(items)) => Some(items),
        Some(_) => None,
    }
}

/// An enum field, by name or number; absent is the first value (0).
fn is_enum(obj: &Value, field: &str, name: &str, number: i64) -> bool {
    match get(obj, field) {
        None | Some(Value::Null) => number == 0,
        Some(Value::String(s)) => s == name,
        Some(Value::Number(n)) => n.as_i64() == Some(number),
        Some(_) => false,
    }
}

/// Bytes as a message shows them (`""` when empty).
fn show(b: &[u8]) -> String {
    if b.is_empty() {
        return "\"\"".into();
    }
    summarize(b, b.len()).text
}

/// Bytes as a history holds them.
fn value(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A request's text and the key-value operation it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Request {
    pub text: String,
    pub kv: Option<KvRequest>,
}

/// What a request's JSON body asks for; `None` when it is not the call's message.
pub(super) fn request(call: Call, body: &Value) -> Option<Request> {
    if !body.is_object() {
        return None;
    }
    let key = bytes(body, "key")?;
    match call {
        Call::Put => {
            let val = bytes(body, "value")?;
            let mut text = format!("PUT {} {}", show(&key), show(&val));
            // `ignore_value` keeps the old value; an empty key is refused.
            let ignore_value = flag(body, "ignore_value");
            if ignore_value {
                text += " ignore_value";
            }
            let kv = (!key.is_empty() && !ignore_value).then(|| KvRequest::Write {
                key: value(key),
                value: value(val),
            });
            Some(Request { text, kv })
        }
        Call::Range => {
            let end = bytes(body, "range_end")?;
            let mut text = format!("RANGE {}", show(&key));
            if !end.is_empty() {
                text += &format!("..{}", show(&end));
            }
            let revision = int(body, "revision");
            if revision > 0 {
                text += &format!(" @{revision}");
            }
            let mut plain = end.is_empty() && revision <= 0;
            for option in ["serializable", "keys_only", "count_only"] {
                if flag(body, option) {
                    text += &format!(" {option}");
                    plain = false;
                }
            }
            // Only a linearizable read of one key's value is a register read: a
            // serializable read may be stale by contract, an old revision is the past.
            let kv = (plain && !key.is_empty()).then(|| KvRequest::Read { key: value(key) });
            Some(Request { text, kv })
        }
        Call::DeleteRange => {
            let end = bytes(body, "range_end")?;
            let mut text = format!("DELETE {}", show(&key));
            if !end.is_empty() {
                text += &format!("..{}", show(&end));
            }
            Some(Request { text, kv: None })
        }
        Call::Txn => txn(body),
    }
}

/// A transaction: a compare-and-set when it compares one key's value and puts that key,
/// reading it at most when the compare fails.
fn txn(body: &Value) -> Option<Request> {
    let compares = list(body, "compare")?;
    let success = list(body, "success")?;
    let failure = list(body, "failure")?;
    let cas = || -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        let ([compare], [then]) = (compares, success) else {
            return None;
        };
        if !is_enum(compare, "target", "VALUE", 3) || !is_enum(compare, "result", "EQUAL", 0) {
            return None;
        }
        let key = bytes(compare, "key")?;
        let old = bytes(compare, "value")?;
        let put = get(then, "request_put")?;
        if !bytes(compare, "range_end")?.is_empty()
            || bytes(put, "key")? != key
            || key.is_empty()
            || flag(put, "ignore_value")
            || !failure.iter().all(|op| get(op, "request_range").is_some())
        {
            return None;
        }
        Some((key, old, bytes(put, "value")?))
    };
    Some(match cas() {
        Some((key, old, new)) => Request {
            text: format!("TXN {} {}→{}", show(&key), show(&old), show(&new)),
            kv: Some(KvRequest::Cas {
                key: value(key),
                old: value(old),
                new: value(new),
            }),
        },
        None => Request {
            text: format!(
                "TXN ({} compares, {} success ops, {} failure ops)",
                compares.len(),
                success.len(),
                failure.len()
            ),
            kv: None,
        },
    })
}

/// A response's text (`None`: the generic one) and what it says of the call's key-value
/// operation. `status` is the status line's code and reason, `body` the body's JSON when
/// all of it was seen.
pub(super) fn response(
    call: Call,
    code: u16,
    status: &str,
    body: Option<&Value>,
) -> (Option<String>, Option<KvResponse>) {
    if code != 200 {
        let text = body
            .and_then(|b| b.get("error").or_else(|| b.get("message")))
            .and_then(Value::as_str)
            .map(|e| format!("{status} {}", show(e.as_bytes())));
        return (text, Some(failure(code, body)));
    }
    let Some(body) = body.filter(|b| b.is_object()) else {
        return (None, None);
    };
    let revision = body
        .get("header")
        .map(|h| int(h, "revision"))
        .filter(|&r| r > 0)
        .map(|r| format!(" rev {r}"))
        .unwrap_or_default();
    match call {
        Call::Put => (Some(format!("{status}{revision}")), Some(KvResponse::Ok)),
        Call::Range => {
            let Some(kvs) = list(body, "kvs") else {
                return (None, None);
            };
            let Some(first) = kvs.first() else {
                return (
                    Some(format!("{code} (none){revision}")),
                    Some(KvResponse::Value(None)),
                );
            };
            let (Some(key), Some(val)) = (bytes(first, "key"), bytes(first, "value")) else {
                return (None, None);
            };
            let more = match kvs.len() {
                1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            let text = format!("{code} {}={}{more}{revision}", show(&key), show(&val));
            (Some(text), Some(KvResponse::Value(Some(value(val)))))
        }
        Call::Txn => {
            let (word, kv) = match body.get("succeeded") {
                Some(Value::Bool(true)) => ("succeeded", KvResponse::Ok),
                // Absent is false: proto3 JSON leaves defaults out.
                _ => ("failed", KvResponse::Fail),
            };
            (Some(format!("{code} {word}{revision}")), Some(kv))
        }
        Call::DeleteRange => (
            Some(format!("{code} deleted {}{revision}", int(body, "deleted"))),
            None,
        ),
    }
}

/// What a refused call says of its operation. `Fail` only when the request certainly did
/// not reach raft: calling a committed write failed makes a correct history look
/// non-linearizable, while `Unknown` only widens the search. The gateway's error body
/// carries the gRPC code, which says more than the HTTP status it maps to (grpc-gateway
/// maps Canceled to 408 and both timeouts and "leader changed" to 5xx, all of which can
/// follow a proposal that commits).
fn failure(status: u16, body: Option<&Value>) -> KvResponse {
    match body.and_then(|b| b.get("code")).and_then(Value::as_i64) {
        // InvalidArgument, NotFound, AlreadyExists, PermissionDenied, ResourceExhausted
        // (too many requests), FailedPrecondition, OutOfRange, Unimplemented,
        // Unauthenticated: checked before the request is proposed.
        Some(3 | 5 | 6 | 7 | 8 | 9 | 11 | 12 | 16) => KvResponse::Fail,
        // Canceled, Unknown, DeadlineExceeded, Aborted, Internal, Unavailable, DataLoss.
        Some(_) => KvResponse::Unknown,
        // No gRPC code: the gateway's own refusals (404 for an unknown path, 405, a
        // body that is not JSON) happen before any call; a timeout or a proxy's 5xx may
        // not.
        None => match status {
            408 | 499 => KvResponse::Unknown,
            400..=499 => KvResponse::Fail,
            _ => KvResponse::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(call: Call, body: &str) -> Option<Request> {
        request(call, &serde_json::from_str(body).ok()?)
    }

    fn cas(key: &str, old: &str, new: &str) -> Option<KvRequest> {
        Some(KvRequest::Cas {
            key: key.into(),
            old: old.into(),
            new: new.into(),
        })
    }

    #[test]
    fn paths() {
        assert_eq!(call(b"POST", b"/v3/kv/put"), Some(Call::Put));
        assert_eq!(call(b"POST", b"/v3beta/kv/range"), Some(Call::Range));
        assert_eq!(call(b"POST", b"/v3alpha/kv/txn"), Some(Call::Txn));
        assert_eq!(
            call(b"POST", b"/v3/kv/deleterange"),
            Some(Call::DeleteRange)
        );
        assert_eq!(call(b"GET", b"/v3/kv/put"), None);
        assert_eq!(call(b"POST", b"/v3/kv/compaction"), None);
        assert_eq!(call(b"POST", b"/v2/keys/a"), None);
    }

    #[test]
    fn requests() {
        let put = req(Call::Put, r#"{"key": "azM=", "value": "djc="}"#);
        assert_eq!(
            put,
            Some(Request {
                text: "PUT k3 v7".into(),
                kv: Some(KvRequest::Write {
                    key: "k3".into(),
                    value: "v7".into()
                })
            })
        );
        let put = req(Call::Put, r#"{"key":"azM=","ignoreValue":true}"#).unwrap();
        assert_eq!(
            (put.text.as_str(), put.kv),
            ("PUT k3 \"\" ignore_value", None)
        );
        assert_eq!(req(Call::Put, r#"{"key":"!!"}"#), None);
        assert_eq!(req(Call::Put, r#"["azM="]"#), None);

        let range = req(Call::Range, r#"{"key":"azM="}"#).unwrap();
        assert_eq!(range.text, "RANGE k3");
        assert_eq!(range.kv, Some(KvRequest::Read { key: "k3".into() }));
        let range = req(Call::Range, r#"{"key":"YQ==","range_end":"eg=="}"#).unwrap();
        assert_eq!((range.text.as_str(), range.kv), ("RANGE a..z", None));
        let range = req(
            Call::Range,
            r#"{"key":"azM=","serializable":true,"revision":"5"}"#,
        )
        .unwrap();
        assert_eq!(
            (range.text.as_str(), range.kv),
            ("RANGE k3 @5 serializable", None)
        );

        let del = req(Call::DeleteRange, r#"{"key":"azM="}"#).unwrap();
        assert_eq!((del.text.as_str(), del.kv), ("DELETE k3", None));
    }

    #[test]
    fn transactions() {
        let t = req(
            Call::Txn,
            r#"{"compare":[{"key":"azM=","target":"VALUE","result":"EQUAL","value":"djE="}],"success":[{"request_put":{"key":"azM=","value":"djI="}}]}"#,
        )
        .unwrap();
        assert_eq!(t.text, "TXN k3 v1→v2");
        assert_eq!(t.kv, cas("k3", "v1", "v2"));
        // Enums by number, result left out (EQUAL is 0), camelCase names, a read on failure.
        let t = req(
            Call::Txn,
            r#"{"compare":[{"key":"azM=","target":3,"value":"djE="}],"success":[{"requestPut":{"key":"azM=","value":"djI="}}],"failure":[{"request_range":{"key":"azM="}}]}"#,
        )
        .unwrap();
        assert_eq!(t.kv, cas("k3", "v1", "v2"));
        for other in [
            // Another key put.
            r#"{"compare":[{"key":"azM=","target":"VALUE","value":"djE="}],"success":[{"request_put":{"key":"azQ=","value":"djI="}}]}"#,
            // A version compare.
            r#"{"compare":[{"key":"azM=","target":"VERSION","version":"0"}],"success":[{"request_put":{"key":"azM=","value":"djI="}}]}"#,
            // Not equal.
            r#"{"compare":[{"key":"azM=","target":"VALUE","result":"NOT_EQUAL","value":"djE="}],"success":[{"request_put":{"key":"azM=","value":"djI="}}]}"#,
            // A write on failure.
            r#"{"compare":[{"key":"azM=","target":"VALUE","value":"djE="}],"success":[{"request_put":{"key":"azM=","value":"djI="}}],"failure":[{"request_put":{"key":"azM=","value":"djM="}}]}"#,
        ] {
            let t = req(Call::Txn, other).unwrap();
            assert_eq!(t.kv, None, "{other}");
        }
        let t = req(
            Call::Txn,
            r#"{"success":[{"request_range":{"key":"azM="}}]}"#,
        )
        .unwrap();
        assert_eq!(t.text, "TXN (0 compares, 1 success ops, 0 failure ops)");
        assert_eq!(req(Call::Txn, r#"{"compare":{}}"#), None);
    }

    #[test]
    fn responses() {
        let header = r#""header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"}"#;
        let v = |s: String| serde_json::from_str::<Value>(&s).unwrap();
        let put = v(format!("{{{header}}}"));
        assert_eq!(
            response(Call::Put, 200, "200 OK", Some(&put)),
            (Some("200 OK rev 2".into()), Some(KvResponse::Ok))
        );
        let found = v(format!(
            r#"{{{header},"kvs":[{{"key":"azM=","create_revision":"2","mod_revision":"2","version":"1","value":"djc="}}],"count":"1"}}"#
        ));
        assert_eq!(
            response(Call::Range, 200, "200 OK", Some(&found)),
            (
                Some("200 k3=v7 rev 2".into()),
                Some(KvResponse::Value(Some("v7".into())))
            )
        );
        assert_eq!(
            response(Call::Range, 200, "200 OK", Some(&put)),
            (
                Some("200 (none) rev 2".into()),
                Some(KvResponse::Value(None))
            )
        );
        let swapped = v(format!(r#"{{{header},"succeeded":true,"responses":[]}}"#));
        assert_eq!(
            response(Call::Txn, 200, "200 OK", Some(&swapped)),
            (Some("200 succeeded rev 2".into()), Some(KvResponse::Ok))
        );
        assert_eq!(
            response(Call::Txn, 200, "200 OK", Some(&put)),
            (Some("200 failed rev 2".into()), Some(KvResponse::Fail))
        );
        assert_eq!(response(Call::Range, 200, "200 OK", None), (None, None));
    }

    #[test]
    fn errors() {
        let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        let refused = v(
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#,
        );
        assert_eq!(
            response(Call::Put, 400, "400 Bad Request", Some(&refused)),
            (
                Some("400 Bad Request etcdserver: key is not provided".into()),
                Some(KvResponse::Fail)
            )
        );
        let timeout = v(r#"{"error":"etcdserver: request timed out","code":14}"#);
        assert_eq!(
            response(Call::Put, 503, "503 Service Unavailable", Some(&timeout)).1,
            Some(KvResponse::Unknown)
        );
        let canceled = v(r#"{"error":"context canceled","code":1}"#);
        assert_eq!(
            response(Call::Txn, 408, "408 Request Timeout", Some(&canceled)).1,
            Some(KvResponse::Unknown)
        );
        assert_eq!(
            response(Call::Put, 404, "404 Not Found", None),
            (None, Some(KvResponse::Fail))
        );
        assert_eq!(
            response(Call::Put, 502, "502 Bad Gateway", None),
            (None, Some(KvResponse::Unknown))
        );
    }
}
