//! The floor of `benches/compare.sh`: the smallest Pingora 0.9 reverse proxy
//! (only `upstream_peer`, same crate features and thread count as the
//! gateway), so the gateway's own per-request cost can be told apart from
//! Pingora's. Built as an example so `cargo test --all-targets` only compiles it.
//!
//!     cargo run --release --example floor_proxy -- LISTEN UPSTREAM [THREADS]
//!     cargo run --release --example floor_proxy -- 127.0.0.1:8081 127.0.0.1:8080 1

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::upstreams::peer::HttpPeer;

struct Floor {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

pub fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: floor_proxy LISTEN UPSTREAM [THREADS]";
    let listen = args.next().expect(usage);
    let upstream: SocketAddr = args.next().expect(usage).parse().expect(usage);
    let threads = args.next().map_or(1, |t| t.parse().expect(usage));
    let conf = ServerConf {
        threads,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Floor { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
