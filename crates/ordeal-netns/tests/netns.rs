//! Real namespaces (needs root): addresses, reachability, cuts both ways and one way, and
//! nothing left once the network is dropped.

use ordeal_netns::{live_namespaces, ns_inode, Network};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

/// Listens on `member`'s address; returns the listener (it lives in that namespace).
fn listen(net: &Network, member: &str) -> TcpListener {
    let addr = SocketAddr::new(net.addr(member).unwrap().into(), 0);
    net.in_member(member, || TcpListener::bind(addr).unwrap())
        .unwrap()
}

fn connects(net: &Network, from: &str, to: SocketAddr) -> bool {
    net.in_member(from, || {
        TcpStream::connect_timeout(&to, Duration::from_millis(300)).is_ok()
    })
    .unwrap()
}

#[test]
fn members_get_addresses_and_reach_each_other_until_cut() {
    let net = Network::create(&names(&["a", "b", "c"])).unwrap();
    assert_eq!(net.addr("a").unwrap().to_string(), "10.77.0.1");
    assert_eq!(net.addr("c").unwrap().to_string(), "10.77.0.3");
    assert_eq!(net.addr("d"), None);
    let lb = listen(&net, "b");
    let b = lb.local_addr().unwrap();
    assert!(connects(&net, "a", b));
    assert!(connects(&net, "c", b));
    assert!(net.hub_connects(b, Duration::from_millis(300)));
    // Not reachable from the caller's own namespace: nothing of it is there.
    assert!(TcpStream::connect_timeout(&b, Duration::from_millis(100)).is_err());

    net.cut(&names(&["a"]), &names(&["b"]), false).unwrap();
    assert!(!connects(&net, "a", b));
    assert!(connects(&net, "c", b));
    let la = listen(&net, "a");
    assert!(!connects(&net, "b", la.local_addr().unwrap()));
    assert_eq!(net.cuts().len(), 2);

    net.heal().unwrap();
    assert!(connects(&net, "a", b));
    assert!(net.cuts().is_empty());
    assert!(net.cut(&names(&["a"]), &names(&["zz"]), false).is_err());
}

#[test]
fn a_oneway_cut_drops_one_direction_only() {
    let net = Network::create(&names(&["a", "b"])).unwrap();
    let bind = |m: &str| {
        let addr = SocketAddr::new(net.addr(m).unwrap().into(), 0);
        net.in_member(m, || {
            let s = UdpSocket::bind(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s
        })
        .unwrap()
    };
    let (sa, sb) = (bind("a"), bind("b"));
    net.cut(&names(&["a"]), &names(&["b"]), true).unwrap();
    let mut buf = [0u8; 16];
    sa.send_to(b"a->b", sb.local_addr().unwrap()).unwrap();
    assert!(sb.recv_from(&mut buf).is_err(), "a -> b is cut");
    sb.send_to(b"b->a", sa.local_addr().unwrap()).unwrap();
    let (n, from) = sa.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"b->a"[..], sb.local_addr().unwrap()));
}

#[test]
fn dropping_the_network_leaves_no_namespace_and_no_process() {
    let net = Network::create(&names(&["a", "b"])).unwrap();
    let inodes: Vec<u64> = ["a", "b"]
        .iter()
        .map(|m| ns_inode(&net.netns(m).unwrap()).unwrap())
        .chain([ns_inode(&net.hub_netns()).unwrap()])
        .collect();
    let pids = net.holder_pids();
    assert_eq!(pids.len(), 3);
    let live = live_namespaces();
    assert!(inodes.iter().all(|i| live.contains(i)));
    drop(net);
    let live = live_namespaces();
    for i in &inodes {
        assert!(!live.contains(i), "namespace {i} is still in use");
    }
    for p in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "holder {p} survives"
        );
    }
}
