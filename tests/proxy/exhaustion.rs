//! File-descriptor exhaustion (hardening item 6): the binary under
//! `prlimit --nofile=256` meets more connections than it can hold. It must
//! not spin on a failing accept, must not flood its log, and must accept
//! again within a couple of seconds of descriptors freeing.

use std::time::{Duration, Instant};

use crate::support::process::{Process, write_config};
use crate::support::{TestOrigin, fresh_client, lifeboat};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_fds_backs_off_quietly_and_recovers() {
    let _heavy = crate::support::heavy().await;
    let origin = TestOrigin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = lifeboat(&origin)
        .set("log.level", "\"info\"")
        .set("limits.header_read_timeout", "\"60s\"")
        .toml();
    let proc = Process::start_under(
        &["prlimit", "--nofile=256:256", "--"],
        &write_config(dir.path(), &toml),
    );
    let url = format!("http://{}/status/200", proc.http);
    let fresh = fresh_client();
    assert_eq!(fresh.get(&url).send().await.unwrap().status(), 200);
    assert!(
        proc.startup
            .iter()
            .any(|l| l.contains("file descriptor limit is below")),
        "a 256-fd limit under max_connections = 10000 went unmentioned"
    );

    // 400 silent clients: more than the process can hold.
    let mut hogs = Vec::new();
    for i in 0..400 {
        let connect = tokio::net::TcpStream::connect(proc.http);
        let hog = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .unwrap_or_else(|_| panic!("connection {i} found the accept queue full"))
            .unwrap();
        hogs.push(hog);
    }
    crate::support::wait_until("the fd limit to be reached", || proc.fd_count() >= 250).await;

    // Exhausted for three seconds: no busy loop, a bounded log.
    let cpu_before = proc.cpu_time();
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = proc.cpu_time() - cpu_before;
    let share = cpu.as_secs_f64() / wall.elapsed().as_secs_f64();
    let logged = proc.count_lines("accept failed");
    eprintln!(
        "out of fds: {:.1} % CPU, {logged} accept-error lines in all",
        share * 100.0
    );
    assert!(
        share < 0.10,
        "{:.0} % CPU while out of fds: a busy loop",
        share * 100.0
    );
    assert!(logged >= 1, "running out of fds went unlogged");
    assert!(
        logged <= 2,
        "{logged} accept-error lines in ~3 s: not rate-limited"
    );

    // Free the descriptors: accepting resumes within a couple of seconds.
    drop(hogs);
    let freed = Instant::now();
    loop {
        if let Ok(r) = fresh.get(&url).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(3),
            "still not accepting 3 s after fds were freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("accepting again {:?} after fds were freed", freed.elapsed());
}
