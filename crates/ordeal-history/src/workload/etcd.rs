//! etcd's v3 JSON gateway over HTTP: `/v3/kv/range` (linearizable reads), `/v3/kv/put`, and
//! `/v3/kv/txn` comparing the value for compare-and-set. Keys and values are base64. Each
//! operation goes to a random member.

use super::http::{base64_decode, base64_encode, HttpConn, HttpError};
use super::{Client, Reply, Request};
use crate::history::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// An etcd client for one slot.
pub struct EtcdClient {
    conns: Vec<HttpConn>,
    addrs: Vec<SocketAddr>,
    timeout: Duration,
    rng: crate::generate::Rng,
    /// The member of the last request.
    asked: Option<usize>,
}

impl EtcdClient {
    /// A client of the members at `addrs` (client URLs' host:port).
    pub fn new(addrs: Vec<SocketAddr>, timeout: Duration, seed: u64) -> EtcdClient {
        EtcdClient {
            conns: addrs.iter().copied().map(HttpConn::new).collect(),
            addrs,
            timeout,
            rng: crate::generate::Rng::new(seed),
            asked: None,
        }
    }

    fn post(
        &mut self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<(u16, serde_json::Value), HttpError> {
        let deadline = Instant::now() + self.timeout;
        let i = self.rng.below(self.conns.len() as u64) as usize;
        self.asked = Some(i);
        let (code, body) = self.conns[i].post(path, body.to_string().as_bytes(), deadline)?;
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Ok((code, json))
    }
}

/// What a write's HTTP answer means: 2xx ok, 4xx rejected, anything else ambiguous.
fn write_outcome(
    r: Result<(u16, serde_json::Value), HttpError>,
    ok: impl Fn(&serde_json::Value) -> Reply,
) -> Reply {
    match r {
        Ok((200..=299, body)) => ok(&body),
        Ok((code @ 400..=499, body)) => Reply::Fail(format!("HTTP {code}: {body}")),
        Ok((code, body)) => Reply::Info(format!("HTTP {code}: {body}")),
        Err(HttpError::NotSent(why)) => Reply::Fail(why),
        Err(HttpError::Lost(why)) => Reply::Info(why),
    }
}

impl Client for EtcdClient {
    fn call(&mut self, req: &Request) -> Reply {
        self.asked = None;
        match req {
            Request::Read { key } => {
                let r = self.post(
                    "/v3/kv/range",
                    serde_json::json!({ "key": base64_encode(key.as_bytes()) }),
                );
                match r {
                    Ok((200, body)) => {
                        let v = body["kvs"][0]["value"].as_str();
                        match (body["kvs"].as_array().map_or(0, Vec::len), v) {
                            (0, _) => Reply::Ok(Value::Nil),
                            // An empty value is omitted from the JSON.
                            (_, None) => Reply::Ok(Value::Str(String::new())),
                            (_, Some(v)) => match base64_decode(v) {
                                Some(b) => {
                                    Reply::Ok(super::parse_value(&String::from_utf8_lossy(&b)))
                                }
                                None => Reply::Fail(format!("bad base64 value {v:?}")),
                            },
                        }
                    }
                    Ok((code, body)) => Reply::Fail(format!("HTTP {code}: {body}")),
                    Err(HttpError::NotSent(why)) => Reply::Fail(why),
                    Err(HttpError::Lost(why)) => Reply::Info(why),
                }
            }
            Request::Write { key, value } => {
                let r = self.post(
                    "/v3/kv/put",
                    serde_json::json!({
                        "key": base64_encode(key.as_bytes()),
                        "value": base64_encode(value.to_string().as_bytes()),
                    }),
                );
                write_outcome(r, |_| Reply::Ok(Value::Nil))
            }
            Request::Cas { key, old, new } => {
                let k = base64_encode(key.as_bytes());
                let r = self.post(
                    "/v3/kv/txn",
                    serde_json::json!({
                        "compare": [{
                            "key": k,
                            "target": "VALUE",
                            "result": "EQUAL",
                            "value": base64_encode(old.to_string().as_bytes()),
                        }],
                        "success": [{ "request_put": {
                            "key": k,
                            "value": base64_encode(new.to_string().as_bytes()),
                        }}],
                    }),
                );
                write_outcome(r, |body| {
                    if body["succeeded"].as_bool() == Some(true) {
                        Reply::Ok(Value::Nil)
                    } else {
                        Reply::Fail("value differs".into())
                    }
                })
            }
        }
    }

    fn supports_cas(&self) -> bool {
        true
    }

    fn node(&self) -> Option<String> {
        self.asked.map(|n| self.addrs[n].to_string())
    }
}
