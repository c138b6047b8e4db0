//! The store conformance suite: every behaviour the OAuth flows rely on,
//! written once against `Arc<dyn Store>` and run against both backends, plus
//! the backend-specific failure modes (embedded restart, Redis outage).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drio_gateway::store::embedded::EmbeddedStore;
use drio_gateway::store::open::{open_embedded, open_redis};
use drio_gateway::store::redis::RedisStore;
use drio_gateway::store::Store;
use tokio::sync::mpsc;

use crate::support::redis::RedisServer;

const OP_TIMEOUT: Duration = Duration::from_millis(500);

/// A store plus whatever must outlive it (temp dir or Redis process).
struct Backend {
    store: Arc<dyn Store>,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_embedded(&dir.path().join("state/store.redb"))
        .await
        .expect("open embedded store");
    Backend {
        store,
        _guard: Box::new(dir),
    }
}

async fn redis() -> Backend {
    let server = RedisServer::start();
    let store = open_redis(&server.url(), &unique_prefix(), OP_TIMEOUT)
        .await
        .expect("connect redis store");
    Backend {
        store,
        _guard: Box::new(server),
    }
}

fn unique_prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "conformance:{}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Generates `embedded::<case>` and `redis::<case>` tests for each case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = super::embedded().await;
                assert_eq!(backend.store.backend(), "embedded");
                super::$case(backend.store.clone()).await;
            })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = super::redis().await;
                assert_eq!(backend.store.backend(), "redis");
                super::$case(backend.store.clone()).await;
            })*
        }
    };
}

conformance!(
    round_trip,
    ttl_expiry,
    put_if_absent,
    delete,
    take_is_single_use,
    compare_and_swap,
    incr_counts_within_a_fixed_window,
    scan_prefix,
    publish_reaches_subscriber,
    ping,
    capped_stream_pages_newest_first,
);

/// The audit log's capped stream: appends keep at least the newest
/// `max_len` (Redis trims approximately: whole nodes of up to 100 entries),
/// pages go newest first and a returned id continues strictly below it.
async fn capped_stream_pages_newest_first(s: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..250u32 {
        let id = s
            .stream_append("stream:a", i.to_string().as_bytes(), 10)
            .await
            .unwrap();
        assert!(drio_gateway::store::is_stream_id(&id), "{id}");
        ids.push(id);
    }
    s.stream_append("stream:b", b"other", 10).await.unwrap();
    let all = s.stream_page("stream:a", None, 1000).await.unwrap();
    assert!(
        (10..=150).contains(&all.len()),
        "capped near 10: {}",
        all.len()
    );
    let first = s.stream_page("stream:a", None, 4).await.unwrap();
    let values = |p: &[(String, Vec<u8>)]| {
        p.iter()
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&first), ["249", "248", "247", "246"]);
    assert_eq!(first[0].0, ids[249]);
    let next = s
        .stream_page("stream:a", Some(&first[3].0), 4)
        .await
        .unwrap();
    assert_eq!(values(&next), ["245", "244", "243", "242"]);
    assert!(s.stream_page("nothing", None, 5).await.unwrap().is_empty());
    assert!(s.stream_page("stream:a", Some("x"), 5).await.is_err());
}

async fn round_trip(s: Arc<dyn Store>) {
    assert_eq!(s.get("rt:missing").await.unwrap(), None);
    let binary = b"\x00bin\xffary\r\n".to_vec();
    s.put("rt:k", &binary, None).await.unwrap();
    assert_eq!(s.get("rt:k").await.unwrap(), Some(binary));
    s.put("rt:k", b"second", None).await.unwrap();
    assert_eq!(
        s.get("rt:k").await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    s.put("rt:empty", b"", None).await.unwrap();
    assert_eq!(s.get("rt:empty").await.unwrap(), Some(Vec::new()));
}

async fn ttl_expiry(s: Arc<dyn Store>) {
    let short = Some(Duration::from_millis(300));
    s.put("ttl:short", b"v", short).await.unwrap();
    s.put("ttl:forever", b"v", None).await.unwrap();
    assert!(s.get("ttl:short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.get("ttl:short").await.unwrap(), None);
    assert_eq!(s.take("ttl:short").await.unwrap(), None);
    assert!(
        !s.delete("ttl:short").await.unwrap(),
        "expired value counts as absent"
    );
    assert!(s.get("ttl:forever").await.unwrap().is_some());
    // Overwriting without a TTL makes the value permanent.
    s.put("ttl:cleared", b"v", short).await.unwrap();
    s.put("ttl:cleared", b"v2", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.get("ttl:cleared").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
}

async fn put_if_absent(s: Arc<dyn Store>) {
    assert!(s.put_if_absent("pia:k", b"first", None).await.unwrap());
    assert!(!s.put_if_absent("pia:k", b"second", None).await.unwrap());
    assert_eq!(
        s.get("pia:k").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );
    // An expired value does not block a new write.
    assert!(s
        .put_if_absent("pia:ttl", b"old", Some(Duration::from_millis(200)))
        .await
        .unwrap());
    assert!(!s.put_if_absent("pia:ttl", b"new", None).await.unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(s.put_if_absent("pia:ttl", b"new", None).await.unwrap());
    assert_eq!(
        s.get("pia:ttl").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
}

async fn delete(s: Arc<dyn Store>) {
    assert!(!s.delete("del:k").await.unwrap());
    s.put("del:k", b"v", None).await.unwrap();
    assert!(s.delete("del:k").await.unwrap());
    assert_eq!(s.get("del:k").await.unwrap(), None);
    assert!(!s.delete("del:k").await.unwrap());
}

async fn take_is_single_use(s: Arc<dyn Store>) {
    assert_eq!(s.take("take:missing").await.unwrap(), None);
    s.put("take:code", b"secret", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let takers: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take("take:code").await.unwrap() })
        })
        .collect();
    let mut winners = Vec::new();
    for t in takers {
        if let Some(v) = t.await.unwrap() {
            winners.push(v);
        }
    }
    assert_eq!(
        winners,
        vec![b"secret".to_vec()],
        "exactly one taker gets the value"
    );
    assert_eq!(s.get("take:code").await.unwrap(), None);
}

async fn compare_and_swap(s: Arc<dyn Store>) {
    let k = "cas:k";
    assert!(!s
        .compare_and_swap(k, Some(b"x"), Some(b"y"), None)
        .await
        .unwrap());
    assert!(s
        .compare_and_swap(k, None, Some(b"v1"), None)
        .await
        .unwrap());
    assert!(!s
        .compare_and_swap(k, None, Some(b"v2"), None)
        .await
        .unwrap());
    assert!(!s
        .compare_and_swap(k, Some(b"wrong"), Some(b"v2"), None)
        .await
        .unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(s
        .compare_and_swap(k, Some(b"v1"), Some(b"v2"), None)
        .await
        .unwrap());
    assert_eq!(s.get(k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    // `new: None` deletes.
    assert!(s
        .compare_and_swap(k, Some(b"v2"), None, None)
        .await
        .unwrap());
    assert_eq!(s.get(k).await.unwrap(), None);
    // The TTL applies to the swapped-in value.
    let ttl = Some(Duration::from_millis(200));
    assert!(s
        .compare_and_swap(k, None, Some(b"brief"), ttl)
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(s.get(k).await.unwrap(), None);

    // Refresh-token rotation: of N concurrent rotations exactly one wins.
    s.put("cas:race", b"gen0", None).await.unwrap();
    let swappers: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let new = format!("gen1-{i}").into_bytes();
                let won = s
                    .compare_and_swap("cas:race", Some(b"gen0"), Some(&new), None)
                    .await;
                (won.unwrap(), new)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in swappers {
        let (won, new) = t.await.unwrap();
        if won {
            winners.push(new);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one swapper wins");
    assert_eq!(s.get("cas:race").await.unwrap(), winners.pop());
}

async fn incr_counts_within_a_fixed_window(s: Arc<dyn Store>) {
    // Margins that hold on a loaded machine: the third increment comes
    // 500 ms into a 1.5 s window (1 s to spare); the expiry check waits
    // until just past the window's latest possible end (measured from when
    // the first increment returned), which is still before a window pushed
    // back by the third increment would end.
    let window = Duration::from_millis(1500);
    assert_eq!(s.incr("rl:k", window).await.unwrap(), 1);
    let opened_by = Instant::now();
    assert_eq!(s.incr("rl:k", window).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Later increments must not push the window's end back.
    assert_eq!(s.incr("rl:k", window).await.unwrap(), 3);
    assert_eq!(s.incr("rl:other", window).await.unwrap(), 1);
    tokio::time::sleep_until((opened_by + window + Duration::from_millis(100)).into()).await;
    assert_eq!(s.incr("rl:k", window).await.unwrap(), 1, "window expired");
    // Concurrent increments are not lost.
    let incrs: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.incr("rl:many", Duration::from_secs(60)).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in incrs {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<u64>>());
}

async fn scan_prefix(s: Arc<dyn Store>) {
    s.put("scan:a", b"1", None).await.unwrap();
    s.put("scan:b", b"2", None).await.unwrap();
    s.put("scan:c", b"3", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    s.put("scan", b"no", None).await.unwrap();
    s.put("scanner:x", b"no", None).await.unwrap();
    s.put("other:scan:a", b"no", None).await.unwrap();
    // Glob metacharacters in the prefix match only themselves.
    s.put("g*[x]:1", b"yes", None).await.unwrap();
    s.put("gZx]:2", b"no", None).await.unwrap();
    s.put("gAAx:3", b"no", None).await.unwrap();

    let mut all = s.scan_prefix("scan:", 100).await.unwrap();
    all.sort();
    assert_eq!(all.len(), 3);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut live = s.scan_prefix("scan:", 100).await.unwrap();
    live.sort();
    assert_eq!(
        live,
        vec![
            ("scan:a".to_owned(), b"1".to_vec()),
            ("scan:b".to_owned(), b"2".to_vec())
        ]
    );
    assert_eq!(s.scan_prefix("scan:", 1).await.unwrap().len(), 1);
    assert_eq!(
        s.scan_prefix("g*[x]:", 100).await.unwrap(),
        vec![("g*[x]:1".to_owned(), b"yes".to_vec())]
    );
    assert!(s.scan_prefix("nothing:", 100).await.unwrap().is_empty());
}

async fn publish_reaches_subscriber(s: Arc<dyn Store>) {
    let mut rx = s.subscribe("events").await.unwrap();
    let mut rx2 = s.subscribe("events").await.unwrap();
    s.publish("unrelated", b"noise").await.unwrap();
    s.publish("events", b"hello").await.unwrap();
    s.publish("events", b"world").await.unwrap();
    for rx in [&mut rx, &mut rx2] {
        assert_eq!(recv(rx).await.as_deref(), Some(&b"hello"[..]));
        assert_eq!(recv(rx).await.as_deref(), Some(&b"world"[..]));
    }
    // Publishing with nobody listening is not an error.
    drop((rx, rx2));
    s.publish("events", b"void").await.unwrap();
}

async fn ping(s: Arc<dyn Store>) {
    s.ping().await.unwrap();
}

async fn recv(rx: &mut mpsc::Receiver<Vec<u8>>) -> Option<Vec<u8>> {
    tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_survives_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    // Long enough to outlive a reopen on a loaded machine; its expiry after
    // the restart is polled for, not slept for.
    let brief = Duration::from_millis(1500);
    let written = Instant::now();
    {
        let s: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path).unwrap());
        s.put("keep", b"forever", None).await.unwrap();
        s.put("brief", b"soon gone", Some(brief)).await.unwrap();
        s.put("gone", b"x", None).await.unwrap();
        assert!(s.delete("gone").await.unwrap());
        assert_eq!(s.incr("count", Duration::from_secs(60)).await.unwrap(), 1);
    }
    let s: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path).unwrap());
    assert_eq!(
        s.get("keep").await.unwrap().as_deref(),
        Some(&b"forever"[..])
    );
    let live = s.get("brief").await.unwrap();
    assert!(
        written.elapsed() >= brief || live.as_deref() == Some(&b"soon gone"[..]),
        "a value with time left survives the restart"
    );
    assert_eq!(s.get("gone").await.unwrap(), None);
    assert_eq!(s.incr("count", Duration::from_secs(60)).await.unwrap(), 2);
    let deadline = written + brief + Duration::from_secs(5);
    while s.get("brief").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "TTL honoured after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        written.elapsed() >= brief,
        "expired no earlier than its TTL"
    );
}

/// Entries `a` and `b` expiring after `ttl`, `c` without expiry; returns
/// an instant by which `a` and `b` have certainly expired. (Not polled with
/// `get`: a read purges an expired entry itself.)
async fn three_entries(store: &EmbeddedStore, ttl: Duration) -> Instant {
    store.put("a", b"1", Some(ttl)).await.unwrap();
    store.put("b", b"2", Some(ttl)).await.unwrap();
    let expired_by = Instant::now() + ttl + Duration::from_millis(50);
    store.put("c", b"3", None).await.unwrap();
    expired_by
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sweeper_purges_expired_entries() {
    let ttl = Duration::from_secs(1);
    let dir = tempfile::tempdir().expect("tempdir");
    // Without a sweeper, purging removes exactly the expired entries (so a
    // purge that finds nothing on the swept store means the sweeper did it).
    let manual = Arc::new(EmbeddedStore::open(&dir.path().join("manual.redb")).unwrap());
    let manual_expired_by = three_entries(&manual, ttl).await;
    // Nothing has expired yet, so nothing is purged.
    assert_eq!(manual.purge_expired().await.unwrap(), 0);
    // With the sweeper, the expired entries leave the file by themselves.
    let path = dir.path().join("swept.redb");
    let store = Arc::new(EmbeddedStore::open(&path).unwrap());
    let swept_expired_by = three_entries(&store, ttl).await;
    let sweeper = store.spawn_sweeper(Duration::from_millis(50));

    tokio::time::sleep_until(manual_expired_by.into()).await;
    assert_eq!(manual.purge_expired().await.unwrap(), 2, "a and b");
    assert_eq!(manual.purge_expired().await.unwrap(), 0, "already gone");
    assert_eq!(manual.get("c").await.unwrap().as_deref(), Some(&b"3"[..]));

    // Twenty sweeps' worth of time after expiry, then a fresh handle on the
    // file (no sweeper, no reads in between) finds nothing left to purge.
    tokio::time::sleep_until((swept_expired_by + Duration::from_secs(1)).into()).await;
    sweeper.abort();
    let _ = sweeper.await;
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(5);
    let reopened = loop {
        // A sweep already on the blocking pool may hold the file a moment longer.
        match EmbeddedStore::open(&path) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "reopen: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        reopened.purge_expired().await.unwrap(),
        0,
        "the sweeper left expired entries behind"
    );
    assert_eq!(reopened.get("c").await.unwrap().as_deref(), Some(&b"3"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), &unique_prefix(), OP_TIMEOUT)
        .await
        .unwrap();
    store.put("k", b"v", None).await.unwrap();
    let mut sub = store.subscribe("events").await.unwrap();
    store.publish("events", b"before").await.unwrap();
    assert_eq!(recv(&mut sub).await.as_deref(), Some(&b"before"[..]));

    server.stop();
    for _ in 0..3 {
        let started = Instant::now();
        assert!(
            store.get("k").await.is_err(),
            "get must fail while Redis is down"
        );
        assert!(
            store.ping().await.is_err(),
            "ping must fail while Redis is down"
        );
        assert!(store.put("k", b"v", None).await.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ops must not hang: {:?}",
            started.elapsed()
        );
    }

    server.start_again();
    wait_until_ready(&store).await;
    store.put("k", b"again", None).await.unwrap();
    assert_eq!(
        store.get("k").await.unwrap().as_deref(),
        Some(&b"again"[..])
    );

    // The pre-outage subscription resubscribes by itself; publish until it
    // is back (messages sent before it resubscribes are lost by design).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        store.publish("events", b"after").await.unwrap();
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
            assert_eq!(msg, b"after");
            break;
        }
        assert!(Instant::now() < deadline, "subscription did not recover");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_startup_connects_later() {
    let mut server = RedisServer::start();
    server.stop();
    let store = RedisStore::connect(&server.url(), &unique_prefix(), OP_TIMEOUT)
        .await
        .expect("connect must not need Redis to be up");
    let started = Instant::now();
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    server.start_again();
    wait_until_ready(&store).await;
    assert!(store.put_if_absent("k", b"v", None).await.unwrap());
}

#[tokio::test]
async fn redis_invalid_url_is_rejected() {
    assert!(RedisStore::connect("not a url", "p:", OP_TIMEOUT)
        .await
        .is_err());
}

async fn wait_until_ready(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "store did not reconnect after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
