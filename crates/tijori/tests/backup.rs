//! `tijori backup` on the real binary: taken while `tijori serve` answers payments on
//! the same SQLite file, the copy opens, passes `PRAGMA integrity_check`, holds every
//! payment answered before the backup began (as completed if its verify had been
//! answered so), and a tijori started on it, restored as the command says, serves
//! them.
#![allow(clippy::unwrap_used)] // a test: a panic is its failure report

#[allow(dead_code)] // each test file uses some of it
mod server;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use server::{client, database_url, post, Server};

/// `tijori backup ARGS` on the database `database_url` names.
fn backup(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tijori"))
        .arg("backup")
        .args(args)
        .env("TIJORI_DATABASE_URL", database_url)
        .env("TIJORI_LOG", "warn")
        .output()
        .unwrap()
}

/// What the load was told about one payment.
struct Answered {
    token: String,
    /// When initiate answered 200 (the payment committed).
    initiated: Instant,
    /// When verify answered "completed", if it did.
    completed: Option<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_holds_every_answered_payment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let base = server.base.clone();
    let http = client();
    let res = http
        .put(format!("{base}/sandbox/khalti/_sandbox/settings"))
        .json(&json!({"auto_complete": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let plans: Vec<Value> = http
        .get(format!("{base}/api/subscriptions/plans/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plan = plans.iter().find(|p| p["currency"] == "NPR").unwrap()["id"].clone();

    // Three customers pay over and over (initiate, then verify every other one) until
    // told to stop.
    let answered = Arc::new(Mutex::new(HashMap::<String, Answered>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for i in 0..3 {
        let res = http
            .post(format!("{base}/api/auth/register"))
            .json(
                &json!({"username": format!("loaded{i}"), "email": format!("l{i}@example.com"),
                "password": "correct horse battery"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let token = res.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (base, plan) = (base.clone(), plan.clone());
        let (answered, stop) = (answered.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, started) = post(
                    &base,
                    &token,
                    "/api/subscriptions/initiate/",
                    json!({"plan_id": plan}),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "{started}");
                let id = started["payment_id"].as_str().unwrap().to_owned();
                answered.lock().unwrap().insert(
                    id.clone(),
                    Answered {
                        token: token.clone(),
                        initiated: Instant::now(),
                        completed: None,
                    },
                );
                n += 1;
                if n % 2 == 0 {
                    let (status, body) = post(
                        &base,
                        &token,
                        "/api/subscriptions/verify/",
                        json!({"pidx": started["pidx"]}),
                    )
                    .await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    // 200 and "success": the payment is completed.
                    if body["status"] == "success" {
                        answered.lock().unwrap().get_mut(&id).unwrap().completed =
                            Some(Instant::now());
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.lock().unwrap().len() < 30 {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("tijori-backup.db");
    let url = database_url(dir.path());
    let began = Instant::now();
    let out = {
        let (url, copy) = (url.clone(), copy.clone());
        tokio::task::spawn_blocking(move || backup(&url, &[copy.to_str().unwrap()]))
            .await
            .unwrap()
    };
    let ended = Instant::now();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let answered = std::mem::take(&mut *answered.lock().unwrap());

    assert!(stdout.contains("integrity_check: ok"), "{stdout}");
    assert!(stdout.contains("To restore it"), "{stdout}");
    assert!(stdout.contains("-wal"), "{stdout}");
    let copy_db =
        rusqlite::Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let integrity: String = copy_db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let in_copy: HashMap<String, String> = copy_db
        .prepare("SELECT id, status FROM payments")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        stdout.contains(&format!("payments: {}", in_copy.len())),
        "{stdout}"
    );
    let before: Vec<_> = answered
        .iter()
        .filter(|(_, a)| a.initiated < began)
        .collect();
    assert!(before.len() >= 30);
    for (id, a) in &before {
        let status = in_copy.get(*id).unwrap_or_else(|| {
            panic!("{id} was answered before the backup began and is not in the copy")
        });
        if a.completed.is_some_and(|at| at < began) {
            assert_eq!(status, "completed", "{id} was answered completed");
        }
    }
    let completed_before = before
        .iter()
        .filter(|(_, a)| a.completed.is_some_and(|at| at < began))
        .count();
    assert!(completed_before > 0, "some verify was answered before");
    eprintln!(
        "backup in {:?}: {} payments answered before it ({completed_before} completed), {} in the copy, {} in all",
        ended - began,
        before.len(),
        in_copy.len(),
        answered.len()
    );
    drop(copy_db);

    // Restore as the command says: stop, remove -wal and -shm, copy, start.
    server.stop();
    let database = dir.path().join("tijori.db");
    for stale in ["tijori.db-wal", "tijori.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(stale));
    }
    std::fs::copy(&copy, &database).unwrap();
    let server = Server::start(dir.path()).await;
    for (id, a) in before
        .iter()
        .filter(|(_, a)| a.completed.is_some_and(|at| at < began))
    {
        let res = client()
            .get(format!("{}/api/payments/{id}/", server.base))
            .header("Authorization", format!("Token {}", a.token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{id} on the restored tijori");
        let payment: Value = res.json().await.unwrap();
        assert_eq!(payment["status"], "completed", "{payment}");
    }
    // What was written after the backup is gone: the file was replaced.
    let (id, a) = answered
        .iter()
        .find(|(id, a)| a.initiated > ended && !in_copy.contains_key(*id))
        .expect("payments were answered after the backup");
    let res = client()
        .get(format!("{}/api/payments/{id}/", server.base))
        .header("Authorization", format!("Token {}", a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[test]
fn an_existing_file_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url(dir.path());
    let migrated = Command::new(env!("CARGO_BIN_EXE_tijori"))
        .arg("migrate")
        .env("TIJORI_DATABASE_URL", &url)
        .env("TIJORI_LOG", "warn")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let path = dir.path().join("old-backup.db");
    std::fs::write(&path, "last week's backup").unwrap();

    let refused = backup(&url, &[path.to_str().unwrap()]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "last week's backup"
    );

    let forced = backup(&url, &[path.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{forced:?}");
    assert!(String::from_utf8_lossy(&forced.stdout).contains("payments: 0"));
    assert!(std::fs::read(&path)
        .unwrap()
        .starts_with(b"SQLite format 3\0"));
}

#[test]
fn postgres_is_refused_with_a_pointer_to_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    let refused = backup(
        "postgres://tijori:secret@127.0.0.1:1/tijori",
        &[path.to_str().unwrap()],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    assert!(!path.exists());
}
