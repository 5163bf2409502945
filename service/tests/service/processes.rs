//! Real `consumer-auth serve` processes: the seed's curl request as written, a decK-shaped sync,
//! two services on one PostgreSQL, PostgreSQL restarted under load.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{free_port, fresh_database, http, Engine, PrivatePostgres, Service, TempDir};

/// The seed's walkthrough: a fresh `consumer-auth serve` with no flags (its default database, a
/// SQLite file in the working directory), then the request exactly as the seed writes it (only
/// the port differs: 8001 may be taken on a shared machine, so the listen address comes from
/// `CONSUMER_AUTH_ADMIN_LISTEN`).
#[tokio::test]
async fn seed_curl_against_a_fresh_serve() {
    let dir = TempDir::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _service = Service::start(&dir.0, &[], &[("CONSUMER_AUTH_ADMIN_LISTEN", &listen)], port).await;
    assert!(
        dir.0.join("consumer-auth.db").exists(),
        "the default database is consumer-auth.db in the working directory"
    );
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-i",
            "-X",
            "POST",
            "--url",
            &format!("http://localhost:{port}/consumers/"),
            "--data",
            "username=anonymous_users",
        ])
        .output()
        .expect("curl (Debian's curl: `make wrk` installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 201 Created"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or_default()).expect("JSON body");
    assert_eq!(body["username"], "anonymous_users");
    assert_eq!(body["id"].as_str().map(str::len), Some(36));
}

async fn deck_sync(engine: Engine) {
    let dir = TempDir::new();
    let url = fresh_database(engine, &dir).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _service = Service::start(&dir.0, &["--admin-listen", &listen, "--database", &url], &[], port).await;
    let root = http(port, "GET", "/", None, &[]).await.unwrap();
    assert_eq!(root.0, 200);
    assert!(root.1["version"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", root.1);
    for list in ["/services", "/routes", "/plugins", "/certificates", "/snis", "/upstreams"] {
        assert_eq!(
            http(port, "GET", &format!("{list}?size=1000"), None, &[]).await.unwrap(),
            (200, json!({"data": [], "next": null}))
        );
    }
    // decK assigns the UUIDs and PUTs every entity by id; twice, the second changes nothing
    const N: usize = 1100;
    let ids: Vec<(String, String)> =
        (0..N).map(|_| (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string())).collect();
    for round in 0..2 {
        for (i, (cid, kid)) in ids.iter().enumerate() {
            let c = json!({"username": format!("user-{i}"), "custom_id": format!("cid-{i}"), "tags": ["deck"]});
            let (s, b) = http(port, "PUT", &format!("/consumers/{cid}"), Some(&c), &[]).await.unwrap();
            assert_eq!(s, 200, "round {round}: {b}");
            let k = json!({"key": format!("key-{i}"), "tags": ["deck"]});
            let (s, b) = http(port, "PUT", &format!("/consumers/{cid}/key-auth/{kid}"), Some(&k), &[]).await.unwrap();
            assert_eq!((s, b["id"].as_str()), (200, Some(kid.as_str())), "{b}");
        }
    }
    // read back as decK dumps: size=1000, following `offset`
    for (collection, field) in [("consumers", "username"), ("key-auths", "key")] {
        let mut seen = HashSet::new();
        let mut path = format!("/{collection}?size=1000");
        let mut pages = 0;
        loop {
            let (s, page) = http(port, "GET", &path, None, &[]).await.unwrap();
            assert_eq!(s, 200);
            pages += 1;
            for row in page["data"].as_array().unwrap() {
                assert!(seen.insert(row[field].as_str().unwrap().to_string()));
            }
            match page["offset"].as_str() {
                Some(o) => path = format!("/{collection}?size=1000&offset={o}"),
                None => break,
            }
        }
        assert_eq!((seen.len(), pages), (N, 2), "{collection}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deck_sync_sqlite() {
    deck_sync(Engine::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deck_sync_postgres() {
    deck_sync(Engine::Postgres).await
}

/// Two service processes on one PostgreSQL, written to at once: every username exists once,
/// no write is lost (each consumer ends with all the groups added to it through either
/// process), and the change log's versions are 1..N without a gap or a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_postgres() {
    let dir = TempDir::new();
    let url = fresh_database(Engine::Postgres, &dir).await;
    let ports = [free_port(), free_port()];
    let mut services = Vec::new();
    for port in ports {
        let listen = format!("127.0.0.1:{port}");
        services.push(Service::start(&dir.0, &["--admin-listen", &listen, "--database", &url], &[], port).await);
    }
    const USERS: usize = 20;
    const GROUPS: usize = 10;
    // every user created through both processes at once: one 201, one 409
    let mut tasks = Vec::new();
    for u in 0..USERS {
        for port in ports {
            tasks.push(tokio::spawn(async move {
                http(port, "POST", "/consumers", Some(&json!({"username": format!("u{u}")})), &[]).await.unwrap().0
            }));
        }
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), USERS, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), USERS, "{statuses:?}");
    // groups added to each user through alternating processes, all at once
    let mut tasks = Vec::new();
    for u in 0..USERS {
        for g in 0..GROUPS {
            let port = ports[(u + g) % 2];
            tasks.push(tokio::spawn(async move {
                let body = json!({"group": format!("g{g}")});
                http(port, "POST", &format!("/consumers/u{u}/acls"), Some(&body), &[]).await.unwrap().0
            }));
        }
        // and the same PATCH raced through both: last writer wins, nothing half-written
        for port in ports {
            tasks.push(tokio::spawn(async move {
                let body = json!({"custom_id": format!("c{u}-{port}")});
                http(port, "PATCH", &format!("/consumers/u{u}"), Some(&body), &[]).await.unwrap().0
            }));
        }
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 201 || s == 200, "{s}");
    }
    for u in 0..USERS {
        let (s, page) = http(ports[u % 2], "GET", &format!("/consumers/u{u}/acls?size=1000"), None, &[]).await.unwrap();
        assert_eq!(s, 200);
        let groups: HashSet<&str> =
            page["data"].as_array().unwrap().iter().map(|a| a["group"].as_str().unwrap()).collect();
        assert_eq!(groups.len(), GROUPS, "u{u}: {groups:?}");
        let (_, c) = http(ports[0], "GET", &format!("/consumers/u{u}"), None, &[]).await.unwrap();
        let custom = c["custom_id"].as_str().unwrap_or_default();
        assert!(ports.iter().any(|p| custom == format!("c{u}-{p}")), "{c}");
    }
    // versions: one per change, 1..N, in commit order
    let store = consumer_auth_service::serve::open_migrated(&url, Default::default()).await.unwrap();
    let changes = store.changes_since(0, 100_000).await.unwrap();
    let expected = USERS + USERS * GROUPS + USERS * 2;
    assert_eq!(changes.len(), expected);
    assert!(changes.iter().enumerate().all(|(i, c)| c.version == i as i64 + 1));
    drop(services);
}

/// PostgreSQL stopped and started again under load: while it is down the service answers 503
/// with a message in bounded time (never a hang, no other 5xx); once it is back, requests
/// succeed again without restarting the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load() {
    let pg = PrivatePostgres::start();
    let dir = TempDir::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let service = Service::start(&dir.0, &["--admin-listen", &listen, "--database", &pg.url()], &[], port).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]); // 2xx/4xx, 503, slow
    let bad = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, counts, bad) = (stop.clone(), counts.clone(), bad.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let started = Instant::now();
                let body = json!({"username": format!("w{w}-{i}")});
                let r =
                    tokio::time::timeout(Duration::from_secs(20), http(port, "POST", "/consumers", Some(&body), &[]))
                        .await;
                match r {
                    Err(_) => bad.lock().unwrap().push("no answer in 20 s".into()),
                    Ok(Err(e)) => bad.lock().unwrap().push(format!("connection: {e}")),
                    Ok(Ok((s, b))) => {
                        if started.elapsed() > Duration::from_secs(15) {
                            counts[2].fetch_add(1, Ordering::SeqCst);
                        }
                        match s {
                            200..=499 => {
                                counts[0].fetch_add(1, Ordering::SeqCst);
                            }
                            503 if b["message"].as_str().is_some_and(|m| !m.is_empty()) => {
                                counts[1].fetch_add(1, Ordering::SeqCst);
                            }
                            other => bad.lock().unwrap().push(format!("{other} {b}")),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.ctl("stop");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during_outage = counts[1].load(Ordering::SeqCst);
    pg.ctl("start");
    // back: a write succeeds within 10 s
    let back = Instant::now();
    loop {
        let (s, _) = http(
            port,
            "POST",
            "/consumers",
            Some(&json!({"username": format!("after-{}", back.elapsed().as_nanos())})),
            &[],
        )
        .await
        .unwrap();
        if s == 201 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "not back after 10 s: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let bad = bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "{bad:?}");
    assert!(during_outage > 0, "503s while PostgreSQL was down");
    assert_eq!(counts[2].load(Ordering::SeqCst), 0, "no request took more than 15 s");
    assert!(counts[0].load(Ordering::SeqCst) > 10, "requests succeeded before and after");
    drop(service);
}
