//! `ordeal proxy`: proxies created through its API listen on loopback only unless it was
//! started with `--allow-external` (issue 18 item 5); the rest of the API's limits are tested
//! in crates/ordeal-shadow/tests/api_limits.rs.

use ordeal_shadow::api::request;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// Kills the proxy when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ordeal proxy` with its API on a free port and returns it with the API's address
/// (read from its `ordeal: API on http://ADDR` line).
fn proxy(extra: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordeal"))
        .args(["proxy", "--api", "127.0.0.1:0", "--duration", "60s"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let p = Proc(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("the API address is printed").unwrap();
        if let Some(a) = line.strip_prefix("ordeal: API on http://") {
            break a.parse().unwrap();
        }
    };
    (p, addr)
}

fn create_open_proxy(api: SocketAddr) -> (u16, serde_json::Value) {
    let body = json!({"name": "open", "listen": "0.0.0.0:0", "upstream": "127.0.0.1:1"});
    request(api, "POST", "/proxies", Some(&body)).unwrap()
}

#[test]
fn api_proxies_stay_on_loopback_without_allow_external() {
    let (_p, api) = proxy(&[]);
    let (status, v) = create_open_proxy(api);
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        v["error"],
        "proxy listen address 0.0.0.0:0 is not loopback (start ordeal proxy with \
         --allow-external to allow it)"
    );
    let body = json!({"name": "local", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"});
    assert_eq!(
        request(api, "POST", "/proxies", Some(&body)).unwrap().0,
        201
    );
    let (status, v) = request(api, "GET", "/proxies", None).unwrap();
    assert_eq!(status, 200);
    let names: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(names, ["local"]);
}

#[test]
fn allow_external_lets_api_proxies_listen_anywhere() {
    let (_p, api) = proxy(&["--allow-external"]);
    let (status, v) = create_open_proxy(api);
    assert_eq!(status, 201, "{v}");
    assert!(v["listen"].as_str().unwrap().starts_with("0.0.0.0:"), "{v}");
}
