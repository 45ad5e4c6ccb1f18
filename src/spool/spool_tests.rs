//! Unit tests of the spool, included from `spool/mod.rs` under
//! `#[cfg(test)]`: a body fed by the test frame by frame, a reader that
//! takes its bytes when the test says, a real spool directory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::*;

/// A body whose frames the test sends.
struct Fed(mpsc::UnboundedReceiver<Result<Frame<Bytes>, BodyError>>);

impl Body for Fed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.0.poll_recv(cx)
    }
}

type Feed = mpsc::UnboundedSender<Result<Frame<Bytes>, BodyError>>;

fn fed() -> (Feed, Fed) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Fed(rx))
}

/// Set when dropped: the origin's slot, as the spool is given it.
struct Slot(Arc<AtomicBool>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn slot() -> (Slot, Arc<AtomicBool>) {
    let flag = Arc::new(AtomicBool::new(false));
    (Slot(flag.clone()), flag)
}

const BOUNDS: Bounds = Bounds {
    memory: 100,
    max_file: 1 << 20,
    max_total: 1 << 30,
};

/// `n` frames of 40 bytes, each byte its position in the stream (mod 251).
fn frames(n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|f| (0..40).map(|i| ((f * 40 + i) % 251) as u8).collect())
        .collect()
}

fn expected(n: usize) -> Vec<u8> {
    (0..n * 40).map(|i| (i % 251) as u8).collect()
}

async fn until(what: &str, ok: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn next_data(reader: &mut Reader) -> Option<Bytes> {
    let frame = reader.frame().await?.expect("no error");
    Some(frame.into_data().expect("data"))
}

#[tokio::test]
async fn the_origin_is_let_go_at_its_last_byte_and_the_visitor_gets_every_byte_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (slot, released) = slot();
    let mut reader = start(body, slot, BOUNDS, &dir);
    // The visitor reads one frame, then nothing while the origin sends
    // the rest: 100 bytes stay in memory, the rest goes to the file.
    for f in frames(50) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), next_data(&mut reader))
        .await
        .expect("first bytes before the origin's last")
        .unwrap();
    drop(tx);
    until("the origin's slot released", || {
        released.load(Ordering::SeqCst)
    })
    .await;
    let u = dir.usage();
    assert_eq!((u.transfers, u.reading), (1, 0), "{u:?}");
    assert!(u.bytes > 1000, "the rest is on disk: {u:?}");
    let mut got = first.to_vec();
    while let Some(data) = next_data(&mut reader).await {
        got.extend_from_slice(&data);
    }
    assert_eq!(got, expected(50));
    drop(reader);
    let u = dir.usage();
    assert_eq!((u.transfers, u.bytes), (0, 0), "{u:?}");
    assert!(
        u.spilled >= 1800,
        "all but a few frames went through the file: {u:?}"
    );
}

#[tokio::test]
async fn memory_file_and_memory_again_keep_the_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (slot, _) = slot();
    let mut reader = start(body, slot, BOUNDS, &dir);
    let all = frames(40);
    let mut got = Vec::new();
    // Bursts faster than the reader, then the reader catching up (the file
    // emptied), then more bursts: every byte once, in order.
    for burst in all.chunks(10) {
        for f in burst {
            tx.send(Ok(Frame::data(f.clone()))).unwrap();
        }
        for _ in 0..3 {
            got.extend_from_slice(&next_data(&mut reader).await.unwrap());
        }
    }
    drop(tx);
    while let Some(data) = next_data(&mut reader).await {
        got.extend_from_slice(&data);
    }
    assert_eq!(got, expected(40));
}

#[tokio::test]
async fn at_a_bound_the_origin_waits_for_the_visitor_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (slot, released) = slot();
    let bounds = Bounds {
        max_file: 200,
        ..BOUNDS
    };
    let mut reader = start(body, slot, bounds, &dir);
    for f in frames(30) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    drop(tx);
    until("backpressure counted", || dir.usage().backpressured == 1).await;
    assert!(!released.load(Ordering::SeqCst), "the origin is still held");
    assert!(dir.usage().bytes <= 240, "{:?}", dir.usage());
    let mut got = Vec::new();
    while let Some(data) = next_data(&mut reader).await {
        got.extend_from_slice(&data);
    }
    assert_eq!(got, expected(30));
    until("released at the end", || released.load(Ordering::SeqCst)).await;
    assert_eq!(dir.usage().backpressured, 1, "counted once per response");
}

#[tokio::test]
async fn the_total_bound_is_shared_between_responses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let bounds = Bounds {
        max_total: 400,
        ..BOUNDS
    };
    let (tx1, b1) = fed();
    let (tx2, b2) = fed();
    let (s1, _) = slot();
    let (s2, _) = slot();
    let mut r1 = start(b1, s1, bounds, &dir);
    let mut r2 = start(b2, s2, bounds, &dir);
    for f in frames(30) {
        tx1.send(Ok(Frame::data(f.clone()))).unwrap();
        tx2.send(Ok(Frame::data(f))).unwrap();
    }
    drop((tx1, tx2));
    until("both held at the total", || dir.usage().backpressured == 2).await;
    // At most one frame over the total per response.
    assert!(dir.usage().bytes <= 400 + 2 * 40, "{:?}", dir.usage());
    for r in [&mut r1, &mut r2] {
        let mut got = Vec::new();
        while let Some(data) = next_data(r).await {
            got.extend_from_slice(&data);
        }
        assert_eq!(got, expected(30));
    }
}

#[tokio::test]
async fn trailers_and_errors_come_after_the_bytes_before_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (held, _) = slot();
    let mut reader = start(body, held, BOUNDS, &dir);
    for f in frames(5) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().unwrap());
    tx.send(Ok(Frame::trailers(trailers))).unwrap();
    let mut got = Vec::new();
    let last = loop {
        let frame = reader.frame().await.unwrap().unwrap();
        match frame.into_data() {
            Ok(data) => got.extend_from_slice(&data),
            Err(frame) => break frame.into_trailers().unwrap(),
        }
    };
    assert_eq!(got, expected(5));
    assert_eq!(last["x-checksum"], "abc");
    assert!(reader.frame().await.is_none());

    let (tx, body) = fed();
    let (held, released) = slot();
    let mut reader = start(body, held, BOUNDS, &dir);
    for f in frames(5) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    tx.send(Err(BodyError::Idle(Duration::from_secs(30))))
        .unwrap();
    until("released on failure", || released.load(Ordering::SeqCst)).await;
    let mut got = Vec::new();
    let err = loop {
        match reader.frame().await.unwrap() {
            Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap()),
            Err(e) => break e,
        }
    };
    assert_eq!(got, expected(5));
    assert!(matches!(err, BodyError::Idle(_)), "{err}");
}

#[tokio::test]
async fn a_visitor_who_leaves_frees_the_origin_and_the_disk_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (slot, released) = slot();
    let reader = start(body, slot, BOUNDS, &dir);
    for f in frames(20) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    until("read ahead to disk", || dir.usage().bytes > 0).await;
    // The origin sends nothing more, and never ends: the visitor leaving
    // is what lets it go.
    drop(reader);
    until("released", || released.load(Ordering::SeqCst)).await;
    let u = dir.usage();
    assert_eq!((u.transfers, u.bytes), (0, 0), "{u:?}");
    assert!(tx.is_closed(), "the origin's body was dropped");
}

#[tokio::test]
async fn a_spool_directory_that_cannot_be_used_costs_speed_not_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let dir = Dir::open(&blocker.join("spool"));
    let (tx, body) = fed();
    let (slot, released) = slot();
    let mut reader = start(body, slot, BOUNDS, &dir);
    for f in frames(30) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    drop(tx);
    until("the failure counted", || dir.usage().errors > 0).await;
    let mut got = Vec::new();
    while let Some(data) = next_data(&mut reader).await {
        got.extend_from_slice(&data);
    }
    assert_eq!(got, expected(30));
    until("released", || released.load(Ordering::SeqCst)).await;
}

#[test]
fn files_a_crash_left_are_removed_at_start_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(format!("{PREFIX}4242-7")), b"left").unwrap();
    std::fs::write(tmp.path().join("operator-notes.txt"), b"keep").unwrap();
    let _dir = Dir::open(tmp.path());
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["operator-notes.txt"]);
}

#[tokio::test]
async fn a_spool_file_has_no_name_while_it_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (slot, _) = slot();
    let _reader = start(body, slot, BOUNDS, &dir);
    for f in frames(20) {
        tx.send(Ok(Frame::data(f))).unwrap();
    }
    until("read ahead to disk", || dir.usage().bytes > 0).await;
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_visitor_who_keeps_up_reads_the_origin_itself_and_nothing_is_spooled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open(tmp.path());
    let (tx, body) = fed();
    let (held, released) = slot();
    let mut reader = start(body, held, BOUNDS, &dir);
    // The origin is the slower one: a frame every 30 ms, for longer than
    // the watcher's look, each taken as it comes.
    let mut got = Vec::new();
    for f in frames(8) {
        tx.send(Ok(Frame::data(f))).unwrap();
        got.extend_from_slice(&next_data(&mut reader).await.unwrap());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    drop(tx);
    assert!(next_data(&mut reader).await.is_none());
    assert_eq!(got, expected(8));
    assert!(
        released.load(Ordering::SeqCst),
        "let go at the origin's end"
    );
    let u = dir.usage();
    assert_eq!((u.spilled, u.transfers > 0), (0, true), "{u:?}");
}
