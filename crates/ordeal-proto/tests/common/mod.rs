//! Realistic conversations of each protocol, as the transfers (writes) that make them, and
//! ways of feeding them.

#![allow(dead_code)]

use ordeal_proto::{by_name, Conversation, Exchange, Framed, Pairer, Protocol, Side};

pub const C: Side = Side::Client;
pub const S: Side = Side::Server;

/// One write: who made it and its bytes.
pub type Transfer = (Side, Vec<u8>);

pub fn proto(name: &str) -> &'static dyn Protocol {
    by_name(name).unwrap_or_else(|| panic!("no protocol {name}"))
}

fn t(side: Side, bytes: &[u8]) -> Transfer {
    (side, bytes.to_vec())
}

/// A client pipelining commands, a transaction, inline `PING`, RESP3, a subscription.
pub fn resp_client() -> Vec<Transfer> {
    vec![
        t(
            C,
            b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$2\r\nv2\r\n\
              *2\r\n$3\r\nGET\r\n$2\r\nk1\r\n",
        ),
        t(S, b"+OK\r\n+OK\r\n$2\r\nv1\r\n"),
        t(
            C,
            b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nv3\r\n*1\r\n$4\r\nEXEC\r\n",
        ),
        t(S, b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"),
        t(C, b"PING\r\n"),
        t(S, b"+PONG\r\n"),
        t(C, b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$3\r\nGET\r\n$4\r\nnope\r\n"),
        t(S, b"%1\r\n$5\r\nproto\r\n:3\r\n_\r\n"),
        t(C, b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n"),
        t(S, b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"),
        t(S, b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
    ]
}

pub const RESP_CLIENT_PAIRS: &[&str] = &[
    "SET k1 v1 -> +OK",
    "SET k2 v2 -> +OK",
    "GET k1 -> \"v1\"",
    "MULTI -> +OK",
    "SET k1 v3 -> +QUEUED",
    "EXEC -> [+OK]",
    "PING -> +PONG",
    "HELLO 3 -> {\"proto\": :3}",
    "GET nope -> nil",
    "SUBSCRIBE ch -> >[\"subscribe\", \"ch\", :1]",
    ">[\"message\", \"ch\", \"hi\"]",
];

const REPLID: &[u8] = b"8de1787ba490483314a4d30f1c628bc5025eb761";

/// A replica's connection to its primary: handshake, keep-alive, RDB, the stream of
/// commands and the replica's acknowledgements. `diskless`: the RDB is end-marked.
pub fn resp_replica(diskless: bool) -> Vec<Transfer> {
    let mut rdb = b"+FULLRESYNC ".to_vec();
    rdb.extend_from_slice(REPLID);
    rdb.extend_from_slice(b" 0\r\n");
    let content = b"REDIS0011\xfa\x09redis-ver\x057.2.4\xfe\x00\xfb\x01\x00\x00\x02k3\x02v7\xff\x01\x02\x03\x04\x05\x06\x07\x08";
    if diskless {
        let marker = [b'e'; 40];
        rdb.extend_from_slice(b"$EOF:");
        rdb.extend_from_slice(&marker);
        rdb.extend_from_slice(b"\r\n");
        rdb.extend_from_slice(content);
        rdb.extend_from_slice(&marker);
    } else {
        rdb.extend_from_slice(format!("${}\r\n", content.len()).as_bytes());
        rdb.extend_from_slice(content);
    }
    vec![
        t(C, b"*1\r\n$4\r\nPING\r\n"),
        t(S, b"+PONG\r\n"),
        t(
            C,
            b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n\
              *5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n",
        ),
        t(S, b"+OK\r\n+OK\r\n"),
        t(C, b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n"),
        t(S, b"\n"),
        (S, rdb),
        t(
            S,
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$2\r\nk3\r\n$2\r\nv7\r\n\
              *3\r\n$3\r\nSET\r\n$2\r\nk4\r\n$2\r\nv8\r\n",
        ),
        t(C, b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n95\r\n"),
        t(S, b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n"),
        t(C, b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$3\r\n131\r\n"),
    ]
}

pub fn resp_replica_pairs(diskless: bool) -> Vec<String> {
    let id = String::from_utf8_lossy(REPLID);
    vec![
        "PING -> +PONG".into(),
        "REPLCONF listening-port 6380 -> +OK".into(),
        "REPLCONF capa eof capa psync2 -> +OK".into(),
        format!("PSYNC ? -1 -> +FULLRESYNC {id} 0"),
        if diskless {
            "RDB 47 bytes diskless".into()
        } else {
            "RDB 47 bytes".into()
        },
        "SELECT 0".into(),
        "SET k3 v7".into(),
        "SET k4 v8".into(),
        "REPLCONF ACK 95".into(),
        "REPLCONF GETACK *".into(),
        "REPLCONF ACK 131".into(),
    ]
}

/// A client of the demo KV store, then a backup joining its primary.
pub fn demo_client() -> Vec<Transfer> {
    vec![
        t(C, b"SET k3 v7\nGET k3\n"),
        t(S, b"OK\nVALUE v7\n"),
        t(C, b"GET nope\nROLE\n"),
        t(S, b"NOTFOUND\nPRIMARY\n"),
        t(C, b"SET a\n"),
        t(S, b"ERR usage: SET key value\n"),
    ]
}

pub const DEMO_CLIENT_PAIRS: &[&str] = &[
    "SET k3 v7 -> OK",
    "GET k3 -> VALUE v7",
    "GET nope -> NOTFOUND",
    "ROLE -> PRIMARY",
    "SET a -> ERR usage: SET key value",
];

pub fn demo_backup() -> Vec<Transfer> {
    vec![
        t(C, b"JOIN 1\n"),
        t(S, b"SNAPSHOT 4 2\nKV a 1\nKV k3 v7\n"),
        t(C, b"ACK 4\n"),
        t(S, b"REPL 5 a 3\n"),
        t(C, b"ACK 5\n"),
        t(S, b"REPL 6 b 4\n"),
        t(C, b"ACK 6\n"),
    ]
}

pub const DEMO_BACKUP_PAIRS: &[&str] = &[
    "JOIN 1 -> SNAPSHOT 4 2",
    "KV a 1",
    "KV k3 v7",
    "ACK 4",
    "REPL 5 a 3 -> ACK 5",
    "REPL 6 b 4 -> ACK 6",
];

pub fn memcached() -> Vec<Transfer> {
    vec![
        t(C, b"set k3 0 0 2\r\nv7\r\nget k3\r\n"),
        t(S, b"STORED\r\nVALUE k3 0 2\r\nv7\r\nEND\r\n"),
        t(C, b"get a b\r\ndelete a noreply\r\nincr n 1\r\n"),
        t(S, b"VALUE a 0 1\r\n1\r\nEND\r\n5\r\n"),
        t(C, b"stats\r\n"),
        t(S, b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n"),
    ]
}

pub const MEMCACHED_PAIRS: &[&str] = &[
    "set k3 0 0 2 v7 -> STORED",
    "get k3 -> VALUE k3 v7",
    "delete a noreply",
    "get a b -> VALUE a 1",
    "incr n 1 -> 5",
    "stats -> STAT pid 1, uptime 2",
];

/// Feeds `chunks` (side, offset, bytes, starts a transfer) to one conversation.
pub fn feed(
    protocol: Option<&'static dyn Protocol>,
    chunks: &[(Side, u64, &[u8], bool)],
) -> Vec<Framed> {
    let mut conv = Conversation::new(protocol);
    let mut out = Vec::new();
    for &(side, at, bytes, boundary) in chunks {
        out.extend(conv.feed(side, at, bytes, boundary));
    }
    out
}

/// The transfers as chunks, each split where `split` says (offsets within the transfer).
pub fn chunks(
    transfers: &[Transfer],
    split: impl Fn(usize, &[u8]) -> Vec<usize>,
) -> Vec<(Side, u64, &[u8], bool)> {
    let mut at = [0u64; 2];
    let mut out = Vec::new();
    for (i, (side, bytes)) in transfers.iter().enumerate() {
        let mut cuts = split(i, bytes);
        cuts.retain(|&c| c > 0 && c < bytes.len());
        cuts.push(bytes.len());
        let mut from = 0;
        for cut in cuts {
            let base = at[side.index()];
            out.push((*side, base + from as u64, &bytes[from..cut], from == 0));
            from = cut;
        }
        at[side.index()] += bytes.len() as u64;
    }
    out
}

/// Each transfer fed whole.
pub fn whole(protocol: Option<&'static dyn Protocol>, transfers: &[Transfer]) -> Vec<Framed> {
    feed(protocol, &chunks(transfers, |_, _| vec![]))
}

/// Texts of the exchanges the frames make: `request -> response`, or a message alone.
pub fn pairs(frames: &[Framed]) -> Vec<String> {
    let mut pairer = Pairer::default();
    let mut out: Vec<Exchange> = Vec::new();
    for f in frames {
        pairer.push(f.clone(), &mut out);
    }
    pairer.finish(&mut out);
    out.iter()
        .map(|x| match &x.response {
            Some(r) => format!("{} -> {}", x.request.message.text, r.message.text),
            None => x.request.message.text.clone(),
        })
        .collect()
}

/// xorshift64*: a fixed seed gives the same inputs on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// A byte, half the time one that means something to some protocol.
    pub fn byte(&mut self) -> u8 {
        const MEANINGFUL: &[u8] = b"*$+-:_,#!=(%~>|\r\n\r\n0123456789 \nSETGETsetgetVALUEEND";
        if self.next() & 1 == 0 {
            MEANINGFUL[self.below(MEANINGFUL.len())]
        } else {
            self.next() as u8
        }
    }
}
