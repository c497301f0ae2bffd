//! etcd's v3 KV messages (api/etcdserverpb/rpc.proto) as operations: `PUT k3 v7` → `OK rev 5`.

use super::protobuf::{fields, Value};
use crate::{summarize, KvRequest, KvResponse};

/// The methods of service `etcdserverpb.KV` decoded into key-value operations.
const KV_METHODS: [&str; 4] = ["Range", "Put", "DeleteRange", "Txn"];

/// Most compares or ops a transaction's text lists before `…`.
const TXN_SHOWN: usize = 3;

/// A request's text and key-value operation; `None` when the method is not one of the KV
/// service's (its text is then the operation's name).
pub fn request(service: &str, method: &str, msg: &[u8]) -> Option<(String, Option<KvRequest>)> {
    if service != "KV" || !KV_METHODS.contains(&method) {
        if service == "Watch" {
            return Some((watch(msg), None));
        }
        return None;
    }
    Some(match method {
        "Put" => {
            let put = Put::read(msg);
            let mut text = format!("PUT {} {}", show(put.key), show(put.value));
            if put.lease != 0 {
                // In hex, as etcdctl shows and takes lease ids.
                text.push_str(&format!(" lease={:x}", put.lease));
            }
            (text, Some(put.kv()))
        }
        "Range" => {
            let r = Range::read(msg);
            let mut text = format!("RANGE {}", r.keys());
            if r.limit != 0 {
                text.push_str(&format!(" limit={}", r.limit));
            }
            let kv = r
                .range_end
                .is_none()
                .then(|| KvRequest::Read { key: string(r.key) });
            (text, kv)
        }
        "DeleteRange" => (format!("DELETE {}", Range::read(msg).keys()), None),
        _ => txn(msg),
    })
}

/// What a successful response of a KV method says; `None` for other methods.
pub fn response(service: &str, method: &str, msg: &[u8]) -> Option<(String, KvResponse)> {
    if service != "KV" {
        return None;
    }
    let revision = || {
        fields(msg)
            .find(|f| f.0 == 1)
            .and_then(|(_, v)| v.bytes())
            .and_then(|h| fields(h).find(|f| f.0 == 3))
            .and_then(|(_, v)| v.varint())
    };
    match method {
        "Put" => Some((
            revision().map_or("OK".into(), |r| format!("OK rev {r}")),
            KvResponse::Ok,
        )),
        "Range" => {
            let mut kvs = fields(msg)
                .filter(|f| f.0 == 2)
                .filter_map(|(_, v)| v.bytes());
            let Some(first) = kvs.next() else {
                return Some(("not found".into(), KvResponse::Value(None)));
            };
            let (mut key, mut value) = (&[][..], &[][..]);
            for (n, v) in fields(first) {
                match (n, v) {
                    (1, Value::Bytes(b)) => key = b,
                    (5, Value::Bytes(b)) => value = b,
                    _ => {}
                }
            }
            let mut text = format!("{}={}", show(key), show(value));
            let more = kvs.count();
            if more > 0 {
                text.push_str(&format!(" +{more} more"));
            }
            Some((text, KvResponse::Value(Some(string(value)))))
        }
        "DeleteRange" => {
            let deleted = fields(msg).find(|f| f.0 == 2).and_then(|(_, v)| v.varint());
            Some((format!("deleted {}", deleted.unwrap_or(0)), KvResponse::Ok))
        }
        "Txn" => {
            let succeeded = fields(msg).any(|(n, v)| n == 2 && v.varint().unwrap_or(0) != 0);
            Some(if succeeded {
                ("succeeded".into(), KvResponse::Ok)
            } else {
                ("failed".into(), KvResponse::Fail)
            })
        }
        _ => None,
    }
}

fn show(bytes: &[u8]) -> String {
    summarize(bytes, bytes.len()).text
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// PutRequest {key = 1, value = 2, lease = 3, ...}.
struct Put<'a> {
    key: &'a [u8],
    value: &'a [u8],
    lease: u64,
}

impl<'a> Put<'a> {
    fn read(msg: &'a [u8]) -> Put<'a> {
        let mut put = Put {
            key: &[],
            value: &[],
            lease: 0,
        };
        for (n, v) in fields(msg) {
            match (n, v) {
                (1, Value::Bytes(b)) => put.key = b,
                (2, Value::Bytes(b)) => put.value = b,
                (3, Value::Varint(l)) => put.lease = l,
                _ => {}
            }
        }
        put
    }

    fn kv(&self) -> KvRequest {
        KvRequest::Write {
            key: string(self.key),
            value: string(self.value),
        }
    }
}

/// RangeRequest and DeleteRangeRequest {key = 1, range_end = 2, limit = 3 (Range only)}.
struct Range<'a> {
    key: &'a [u8],
    range_end: Option<&'a [u8]>,
    limit: u64,
}

impl<'a> Range<'a> {
    fn read(msg: &'a [u8]) -> Range<'a> {
        let mut r = Range {
            key: &[],
            range_end: None,
            limit: 0,
        };
        for (n, v) in fields(msg) {
            match (n, v) {
                (1, Value::Bytes(b)) => r.key = b,
                // An empty range_end is the same as none: one key.
                (2, Value::Bytes(b)) if !b.is_empty() => r.range_end = Some(b),
                (3, Value::Varint(l)) => r.limit = l,
                _ => {}
            }
        }
        r
    }

    /// `k3`, or `[k3, k4)` for a range.
    fn keys(&self) -> String {
        match self.range_end {
            None => show(self.key),
            Some(end) => format!("[{}, {})", show(self.key), show(end)),
        }
    }
}

/// WatchRequest {create_request = 1 {key = 1, range_end = 2}, cancel_request = 2 {watch_id = 1}}.
fn watch(msg: &[u8]) -> String {
    for (n, v) in fields(msg) {
        match (n, v) {
            (1, Value::Bytes(create)) => return format!("WATCH {}", Range::read(create).keys()),
            (2, Value::Bytes(cancel)) => {
                let id = fields(cancel)
                    .find(|f| f.0 == 1)
                    .and_then(|(_, v)| v.varint());
                return format!("WATCH cancel {}", id.unwrap_or(0));
            }
            _ => {}
        }
    }
    "WATCH".into()
}

/// Compare {result = 1, target = 2, key = 3, target_union: version = 4, create_revision = 5,
/// mod_revision = 6, value = 7, lease = 8}.
struct Compare<'a> {
    result: u64,
    target: u64,
    key: &'a [u8],
    /// The target_union field: its number and value.
    against: Option<(u64, Value<'a>)>,
    ranged: bool,
}

const RESULT_EQUAL: u64 = 0;
const TARGET_VALUE: u64 = 3;

impl<'a> Compare<'a> {
    fn read(msg: &'a [u8]) -> Compare<'a> {
        let mut c = Compare {
            result: RESULT_EQUAL,
            target: 0,
            key: &[],
            against: None,
            ranged: false,
        };
        for (n, v) in fields(msg) {
            match (n, v) {
                (1, Value::Varint(r)) => c.result = r,
                (2, Value::Varint(t)) => c.target = t,
                (3, Value::Bytes(k)) => c.key = k,
                (4..=8, v) => c.against = Some((n, v)),
                (64, Value::Bytes(e)) => c.ranged = !e.is_empty(),
                _ => {}
            }
        }
        c
    }

    /// `value(k3)=v7`, `version(k3)>0`.
    fn text(&self) -> String {
        let target = ["version", "create", "mod", "value", "lease"]
            .get(self.target as usize)
            .unwrap_or(&"?");
        let op = ["=", ">", "<", "!="]
            .get(self.result as usize)
            .unwrap_or(&"?");
        let against = match self.against {
            Some((_, Value::Bytes(b))) => show(b),
            Some((_, Value::Varint(n))) => n.to_string(),
            _ if self.target == TARGET_VALUE => String::new(),
            _ => "0".into(),
        };
        format!("{target}({}){op}{against}", show(self.key))
    }
}

/// RequestOp {request_range = 1, request_put = 2, request_delete_range = 3, request_txn = 4}.
enum Op<'a> {
    Get(Range<'a>),
    Put(Put<'a>),
    Delete(Range<'a>),
    Txn,
    Unknown,
}

impl<'a> Op<'a> {
    fn read(msg: &'a [u8]) -> Op<'a> {
        for (n, v) in fields(msg) {
            match (n, v) {
                (1, Value::Bytes(b)) => return Op::Get(Range::read(b)),
                (2, Value::Bytes(b)) => return Op::Put(Put::read(b)),
                (3, Value::Bytes(b)) => return Op::Delete(Range::read(b)),
                (4, Value::Bytes(_)) => return Op::Txn,
                _ => {}
            }
        }
        Op::Unknown
    }

    fn text(&self) -> String {
        match self {
            Op::Get(r) => format!("get {}", r.keys()),
            Op::Put(p) => format!("put {} {}", show(p.key), show(p.value)),
            Op::Delete(r) => format!("delete {}", r.keys()),
            Op::Txn => "txn".into(),
            Op::Unknown => "?".into(),
        }
    }
}

/// TxnRequest {compare = 1, success = 2, failure = 3}: a compare-and-set when it compares one
/// key's value for equality, puts that key on success and at most reads on failure.
fn txn(msg: &[u8]) -> (String, Option<KvRequest>) {
    let (mut compares, mut success, mut failure) = (Vec::new(), Vec::new(), Vec::new());
    for (n, v) in fields(msg) {
        match (n, v) {
            (1, Value::Bytes(b)) => compares.push(Compare::read(b)),
            (2, Value::Bytes(b)) => success.push(Op::read(b)),
            (3, Value::Bytes(b)) => failure.push(Op::read(b)),
            _ => {}
        }
    }
    if let ([c], [Op::Put(put)]) = (&compares[..], &success[..]) {
        let cas = c.result == RESULT_EQUAL
            && c.target == TARGET_VALUE
            && matches!(c.against, None | Some((7, Value::Bytes(_))))
            && !c.ranged
            && c.key == put.key
            && failure.iter().all(|op| matches!(op, Op::Get(_)));
        if cas {
            let old = match c.against {
                Some((7, Value::Bytes(b))) => b,
                _ => &[],
            };
            let text = format!("TXN {} {}→{}", show(put.key), show(old), show(put.value));
            let kv = KvRequest::Cas {
                key: string(put.key),
                old: string(old),
                new: string(put.value),
            };
            return (text, Some(kv));
        }
    }
    let list = |texts: Vec<String>, sep: &str| {
        if texts.is_empty() {
            return "-".to_string();
        }
        let mut s = texts[..texts.len().min(TXN_SHOWN)].join(sep);
        if texts.len() > TXN_SHOWN {
            s.push_str(&format!("{sep}…({} in all)", texts.len()));
        }
        s
    };
    let text = format!(
        "TXN {} ? {} : {}",
        list(compares.iter().map(Compare::text).collect(), " && "),
        list(success.iter().map(Op::text).collect(), ", "),
        list(failure.iter().map(Op::text).collect(), ", "),
    );
    (text, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(field: u8, b: &[u8]) -> Vec<u8> {
        let mut v = vec![field << 3 | 2, b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    fn varint(field: u8, n: u8) -> Vec<u8> {
        vec![field << 3, n]
    }

    fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
        [bytes(1, key), bytes(2, value)].concat()
    }

    #[test]
    fn put_range_and_delete_requests() {
        let (text, kv) =
            request("KV", "Put", &[put(b"k3", b"v7"), varint(3, 26)].concat()).unwrap();
        assert_eq!(text, "PUT k3 v7 lease=1a");
        assert_eq!(
            kv,
            Some(KvRequest::Write {
                key: "k3".into(),
                value: "v7".into()
            })
        );
        let (text, kv) = request("KV", "Range", &bytes(1, b"k3")).unwrap();
        assert_eq!(
            (text.as_str(), kv),
            ("RANGE k3", Some(KvRequest::Read { key: "k3".into() }))
        );
        let ranged = [bytes(1, b"a"), bytes(2, b"\0"), varint(3, 2)].concat();
        assert_eq!(
            request("KV", "Range", &ranged).unwrap(),
            ("RANGE [a, \\x00) limit=2".into(), None)
        );
        assert_eq!(
            request("KV", "DeleteRange", &bytes(1, b"k3")).unwrap().0,
            "DELETE k3"
        );
        assert_eq!(request("KV", "Compact", &[]), None);
        assert_eq!(request("Lease", "LeaseGrant", &[]), None);
        assert_eq!(
            request("Watch", "Watch", &bytes(1, &bytes(1, b"k3")))
                .unwrap()
                .0,
            "WATCH k3"
        );
    }

    #[test]
    fn a_value_compare_and_one_put_is_a_cas() {
        let compare = [varint(2, 3), bytes(3, b"k3"), bytes(7, b"v1")].concat();
        let op = bytes(2, &put(b"k3", b"v2"));
        let get = bytes(1, &bytes(1, b"k3"));
        let msg = [bytes(1, &compare), bytes(2, &op), bytes(3, &get)].concat();
        let (text, kv) = request("KV", "Txn", &msg).unwrap();
        assert_eq!(text, "TXN k3 v1→v2");
        assert_eq!(
            kv,
            Some(KvRequest::Cas {
                key: "k3".into(),
                old: "v1".into(),
                new: "v2".into()
            })
        );
        // Create-if-absent compares a version: not a cas, shown as it is.
        let compare = [varint(2, 0), bytes(3, b"k3"), varint(4, 0)].concat();
        let msg = [bytes(1, &compare), bytes(2, &op), bytes(3, &get)].concat();
        assert_eq!(
            request("KV", "Txn", &msg).unwrap(),
            ("TXN version(k3)=0 ? put k3 v2 : get k3".into(), None)
        );
        let msg = bytes(2, &op).repeat(5);
        assert_eq!(
            request("KV", "Txn", &msg).unwrap().0,
            "TXN - ? put k3 v2, put k3 v2, put k3 v2, …(5 in all) : -"
        );
    }

    #[test]
    fn responses() {
        let header = bytes(1, &[varint(1, 1), varint(3, 5)].concat());
        assert_eq!(
            response("KV", "Put", &header),
            Some(("OK rev 5".into(), KvResponse::Ok))
        );
        let kv = bytes(
            2,
            &[bytes(1, b"k3"), varint(2, 5), bytes(5, b"v7")].concat(),
        );
        let found = [header.clone(), kv.clone(), varint(4, 1)].concat();
        assert_eq!(
            response("KV", "Range", &found),
            Some(("k3=v7".into(), KvResponse::Value(Some("v7".into()))))
        );
        let two = [header.clone(), kv.clone(), kv, varint(4, 2)].concat();
        assert_eq!(response("KV", "Range", &two).unwrap().0, "k3=v7 +1 more");
        assert_eq!(
            response("KV", "Range", &header),
            Some(("not found".into(), KvResponse::Value(None)))
        );
        let won = [header.clone(), varint(2, 1)].concat();
        assert_eq!(
            response("KV", "Txn", &won),
            Some(("succeeded".into(), KvResponse::Ok))
        );
        assert_eq!(
            response("KV", "Txn", &header),
            Some(("failed".into(), KvResponse::Fail))
        );
        let deleted = [header, varint(2, 1)].concat();
        assert_eq!(
            response("KV", "DeleteRange", &deleted),
            Some(("deleted 1".into(), KvResponse::Ok))
        );
        assert_eq!(response("Lease", "LeaseGrant", &[]), None);
    }
}
