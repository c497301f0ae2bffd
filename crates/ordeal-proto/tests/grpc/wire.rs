//! A test encoder for the grpc decoder's tests: protobuf, HPACK (with and without Huffman,
//! with a dynamic table), HTTP/2 frames, and an etcd client and server talking.

use ordeal_proto::grpc::{hpack, CLIENT_PREFACE};
use ordeal_proto::Side;

pub fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        out.push(if n == 0 { b } else { b | 0x80 });
        if n == 0 {
            return;
        }
    }
}

pub fn pb_bytes(field: u64, b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3 | 2, &mut out);
    varint(b.len() as u64, &mut out);
    out.extend_from_slice(b);
    out
}

pub fn pb_num(field: u64, n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(field << 3, &mut out);
    varint(n, &mut out);
    out
}

/// A gRPC length-prefixed message.
pub fn grpc(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

pub fn header(revision: u64) -> Vec<u8> {
    pb_bytes(1, &[pb_num(1, 0xc1a5), pb_num(3, revision)].concat())
}

/// The static table entries this encoder uses (RFC 7541 appendix A).
const STATIC: [(&str, &str, u64); 7] = [
    (":authority", "", 1),
    (":method", "POST", 3),
    (":path", "/", 4),
    (":scheme", "http", 6),
    (":status", "200", 8),
    ("content-type", "", 31),
    ("user-agent", "", 58),
];

/// An HPACK encoder the way gRPC clients use one: fields indexed when already in a table,
/// otherwise literal with incremental indexing.
pub struct HpackEncoder {
    huffman: bool,
    table: Vec<(String, String)>,
}

impl HpackEncoder {
    pub fn new(huffman: bool) -> HpackEncoder {
        HpackEncoder {
            huffman,
            table: Vec::new(),
        }
    }

    fn int(out: &mut Vec<u8>, flags: u8, bits: u32, v: u64) {
        let max = (1u64 << bits) - 1;
        if v < max {
            out.push(flags | v as u8);
            return;
        }
        out.push(flags | max as u8);
        varint(v - max, out);
    }

    fn string(&self, out: &mut Vec<u8>, s: &str) {
        if self.huffman {
            let coded = hpack::huffman_encode(s.as_bytes());
            Self::int(out, 0x80, 7, coded.len() as u64);
            out.extend_from_slice(&coded);
        } else {
            Self::int(out, 0, 7, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }

    pub fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(name, value) in fields {
            let dynamic = |n: &str, v: Option<&str>| {
                self.table
                    .iter()
                    .position(|(tn, tv)| tn == n && v.is_none_or(|v| v == tv))
                    .map(|i| 62 + i as u64)
            };
            let exact = STATIC
                .iter()
                .find(|s| s.0 == name && s.1 == value)
                .map(|s| s.2)
                .or_else(|| dynamic(name, Some(value)));
            if let Some(i) = exact {
                Self::int(&mut out, 0x80, 7, i);
                continue;
            }
            let named = STATIC
                .iter()
                .find(|s| s.0 == name)
                .map(|s| s.2)
                .or_else(|| dynamic(name, None));
            Self::int(&mut out, 0x40, 6, named.unwrap_or(0));
            if named.is_none() {
                self.string(&mut out, name);
            }
            self.string(&mut out, value);
            self.table.insert(0, (name.to_string(), value.to_string()));
        }
        out
    }
}

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const RST_STREAM: u8 = 3;
pub const SETTINGS: u8 = 4;
pub const PING: u8 = 6;
pub const WINDOW_UPDATE: u8 = 8;
pub const CONTINUATION: u8 = 9;
pub const END_STREAM: u8 = 1;
pub const END_HEADERS: u8 = 4;
pub const PADDED: u8 = 8;
pub const PRIORITY: u8 = 0x20;

/// A client and a server, each with its HPACK context, writing transfers in time order.
pub struct Wire {
    pub client: HpackEncoder,
    pub server: HpackEncoder,
    pub transfers: Vec<(Side, Vec<u8>)>,
}

impl Wire {
    pub fn new(huffman: bool) -> Wire {
        let mut w = Wire {
            client: HpackEncoder::new(huffman),
            server: HpackEncoder::new(huffman),
            transfers: Vec::new(),
        };
        let mut hello = CLIENT_PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 0]));
        w.send(Side::Client, hello);
        w.send(
            Side::Server,
            [
                frame(SETTINGS, 0, 0, &[0, 5, 0, 0, 0x40, 0]),
                frame(SETTINGS, 1, 0, &[]),
            ]
            .concat(),
        );
        w.send(Side::Client, frame(SETTINGS, 1, 0, &[]));
        w
    }

    pub fn send(&mut self, side: Side, bytes: Vec<u8>) {
        self.transfers.push((side, bytes));
    }

    /// A unary call's request: HEADERS then one DATA with END_STREAM.
    pub fn call(&mut self, stream: u32, path: &str, msg: &[u8]) {
        let block = self.client.block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "127.0.0.1:2379"),
            ("content-type", "application/grpc"),
            ("user-agent", "grpc-go/1.26.0"),
            ("te", "trailers"),
        ]);
        let bytes = [
            frame(HEADERS, END_HEADERS, stream, &block),
            frame(DATA, END_STREAM, stream, &grpc(msg)),
        ]
        .concat();
        self.send(Side::Client, bytes);
    }

    /// A response: HEADERS, one DATA, trailers with the status.
    pub fn reply(&mut self, stream: u32, msg: &[u8]) {
        let head = self
            .server
            .block(&[(":status", "200"), ("content-type", "application/grpc")]);
        let trailers = self
            .server
            .block(&[("grpc-status", "0"), ("grpc-message", "")]);
        let bytes = [
            frame(HEADERS, END_HEADERS, stream, &head),
            frame(DATA, 0, stream, &grpc(msg)),
            frame(HEADERS, END_HEADERS | END_STREAM, stream, &trailers),
        ]
        .concat();
        self.send(Side::Server, bytes);
    }

    /// A trailers-only error response.
    pub fn fail(&mut self, stream: u32, code: &str, message: &str) {
        let block = self.server.block(&[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", code),
            ("grpc-message", message),
        ]);
        self.send(
            Side::Server,
            frame(HEADERS, END_HEADERS | END_STREAM, stream, &block),
        );
    }

    /// Each side's whole byte stream.
    pub fn streams(&self) -> [Vec<u8>; 2] {
        let mut out = [Vec::new(), Vec::new()];
        for (side, bytes) in &self.transfers {
            out[side.index()].extend_from_slice(bytes);
        }
        out
    }
}

pub fn put(key: &[u8], value: &[u8]) -> Vec<u8> {
    [pb_bytes(1, key), pb_bytes(2, value)].concat()
}

pub fn kv(key: &[u8], value: &[u8], revision: u64) -> Vec<u8> {
    pb_bytes(
        2,
        &[
            pb_bytes(1, key),
            pb_num(2, revision),
            pb_num(3, revision),
            pb_num(4, 1),
            pb_bytes(5, value),
        ]
        .concat(),
    )
}

/// The etcd conversation every test below decodes.
pub fn etcd_conversation(huffman: bool) -> Wire {
    let mut w = Wire::new(huffman);
    w.call(1, "/etcdserverpb.KV/Put", &put(b"k3", b"v7"));
    w.reply(1, &header(5));
    w.send(Side::Client, frame(PING, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
    w.call(3, "/etcdserverpb.KV/Range", &pb_bytes(1, b"k3"));
    w.send(Side::Server, frame(WINDOW_UPDATE, 0, 0, &[0, 0, 0, 13]));
    w.reply(3, &[header(5), kv(b"k3", b"v7", 5), pb_num(4, 1)].concat());
    let compare = [pb_num(2, 3), pb_bytes(3, b"k3"), pb_bytes(7, b"v7")].concat();
    let then = pb_bytes(2, &put(b"k3", b"v8"));
    w.call(
        5,
        "/etcdserverpb.KV/Txn",
        &[pb_bytes(1, &compare), pb_bytes(2, &then)].concat(),
    );
    w.reply(5, &[header(6), pb_num(2, 1)].concat());
    w.call(7, "/etcdserverpb.KV/Put", &put(b"k4", b"v1"));
    w.fail(7, "14", "etcdserver:%20request%20timed%20out");
    w.call(9, "/etcdserverpb.KV/Range", &pb_bytes(1, b"nokey"));
    w.reply(9, &header(6));
    w.call(11, "/etcdserverpb.Lease/LeaseGrant", &pb_num(1, 5));
    w.reply(11, &[header(6), pb_num(2, 0x1234), pb_num(3, 5)].concat());
    // A request whose header block is split into a padded, prioritized HEADERS and a
    // CONTINUATION, with padded DATA; the server resets it.
    let block = w.client.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/etcdserverpb.KV/Range"),
        (":authority", "127.0.0.1:2379"),
        ("content-type", "application/grpc"),
    ]);
    let (a, b) = block.split_at(2);
    let mut first = vec![3, 0, 0, 0, 0, 15];
    first.extend_from_slice(a);
    first.extend_from_slice(&[0; 3]);
    let mut data = vec![2];
    data.extend(grpc(&pb_bytes(1, b"k5")));
    data.extend_from_slice(&[0; 2]);
    w.send(
        Side::Client,
        [
            frame(HEADERS, PADDED | PRIORITY, 13, &first),
            frame(CONTINUATION, END_HEADERS, 13, b),
            frame(DATA, PADDED | END_STREAM, 13, &data),
        ]
        .concat(),
    );
    w.send(Side::Server, frame(RST_STREAM, 0, 13, &[0, 0, 0, 8]));
    w
}

pub const ETCD_EXCHANGES: [&str; 7] = [
    "PUT k3 v7 -> OK rev 5",
    "RANGE k3 -> k3=v7",
    "TXN k3 v7→v8 -> succeeded",
    "PUT k4 v1 -> grpc-status 14 (UNAVAILABLE): etcdserver: request timed out",
    "RANGE nokey -> not found",
    "etcd.LeaseGrant -> grpc-status 0",
    "RANGE k5 -> RST_STREAM 8 (CANCEL)",
];
