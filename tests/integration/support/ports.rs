//! Free loopback ports for servers the tests start as separate processes.
//!
//! The OS picks a free port (bind to port 0), we release it and hand it to the
//! child. That is racy in principle: another process may grab the port in
//! between. Two precautions keep it reliable on a test box: ports are never
//! handed out twice within this test process, and the kernel hands out
//! ephemeral ports round-robin, so a just-released port is not picked again
//! soon.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// A loopback TCP port that nothing listens on right now and that no other
/// test in this process has been given.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind a loopback port")
            .port();
        let mut seen = handed_out.lock().unwrap_or_else(|p| p.into_inner());
        if seen.insert(port) {
            return port;
        }
    }
}
