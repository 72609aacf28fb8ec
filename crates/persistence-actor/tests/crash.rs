//! `kill -9` during atomic writes: a child process (this test binary, re-executed) writes two
//! versions of a file in a loop; the parent kills it at random moments and checks that the file
//! is always one whole version.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcpvisor_persistence_actor::{
    backup_path, is_temp_file_of, remove_stale_temp_files, write_atomic,
};
use rand::Rng;

/// Tells the re-executed binary to act as the writer, and where to write.
const TARGET_VAR: &str = "MCPVISOR_CRASH_CHILD_TARGET";
/// Which version the writer starts with (`0` or `1`).
const FIRST_VAR: &str = "MCPVISOR_CRASH_CHILD_FIRST";
/// What the writer prints once its first write is done.
const READY: &str = "MCPVISOR_WRITER_READY";
const KILLS: usize = 75;

/// Two versions, different in content and length, large enough that a kill often lands
/// mid-write.
fn versions() -> [Vec<u8>; 2] {
    let make = |tag: &str, n: usize| {
        let services: Vec<String> = (0..n)
            .map(|i| {
                format!("\"{tag}{i}\": {{\"command\": \"node\", \"args\": [\"{tag}-{i}.js\"]}}")
            })
            .collect();
        format!("{{\"mcpServers\": {{{}}}}}\n", services.join(",\n")).into_bytes()
    };
    [make("a", 4000), make("b", 5000)]
}

/// The writer: does nothing in a normal test run; when re-executed with `TARGET_VAR`, writes
/// the two versions alternately until killed, announcing `ready` after the first write.
#[test]
fn crash_child_writer() {
    let Some(target) = std::env::var_os(TARGET_VAR) else {
        return;
    };
    let target = PathBuf::from(target);
    let versions = versions();
    let mut i = match std::env::var(FIRST_VAR).as_deref() {
        Ok("1") => 1,
        _ => 0,
    };
    write_atomic(&target, &versions[i]).expect("first write");
    println!("{READY}");
    loop {
        i = 1 - i;
        write_atomic(&target, &versions[i]).expect("write");
    }
}

fn spawn_writer(target: &Path, first: usize) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TARGET_VAR, target)
        .env(FIRST_VAR, first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("re-execute the test binary");
    // Wait until its first write is done (it prints READY, possibly after the harness's own
    // text on the same line), with a deadline in case it never does.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains(READY));
        let _ = tx.send(ready);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(true) => child,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("writer did not report its first write: {other:?}");
        }
    }
}

fn which_version(bytes: &[u8], versions: &[Vec<u8>; 2]) -> Option<usize> {
    versions.iter().position(|v| v.as_slice() == bytes)
}

#[test]
fn kill_9_during_writes_always_leaves_a_whole_version() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("mcp.json");
    let versions = versions();
    let mut rng = rand::rng();
    let mut seen = [0usize; 2];
    let started = Instant::now();
    // Seed the target, so every writer's first write (done before it reports ready) already
    // keeps a backup: from the first kill on, `.bak` must exist and be whole.
    write_atomic(&target, &versions[1]).unwrap();

    for kill in 0..KILLS {
        let mut child = spawn_writer(&target, kill % 2);
        std::thread::sleep(Duration::from_micros(rng.random_range(0..15_000)));
        child.kill().expect("SIGKILL the writer");
        child.wait().unwrap();

        let bytes = std::fs::read(&target).expect("the target always exists");
        let v = which_version(&bytes, &versions).unwrap_or_else(|| {
            panic!(
                "after kill {kill}: target is neither version ({} bytes)",
                bytes.len()
            )
        });
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("target parses");
        seen[v] += 1;
        let bak = std::fs::read(backup_path(&target))
            .expect("a backup exists once a write replaced a file");
        assert!(
            which_version(&bak, &versions).is_some(),
            "after kill {kill}: backup is not whole ({} bytes)",
            bak.len()
        );
    }

    assert!(
        seen[0] > 0 && seen[1] > 0,
        "both versions observed: {seen:?}"
    );
    // Stale temp files may stay after a kill, but never more than two per kill and never
    // under the target's name.
    let temps = count_temps(dir.path());
    assert!(temps <= 2 * KILLS, "{temps} temp files");
    eprintln!(
        "{KILLS} kills in {:?}; versions seen {seen:?}; {temps} stale temp files",
        started.elapsed()
    );
    // The next start sweeps them (their writers are dead) and leaves the file alone.
    let target_before = std::fs::read(&target).unwrap();
    assert_eq!(remove_stale_temp_files(&target), temps);
    assert_eq!(count_temps(dir.path()), 0);
    assert_eq!(std::fs::read(&target).unwrap(), target_before);
}

fn count_temps(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| is_temp_file_of(&e.file_name().to_string_lossy(), "mcp.json"))
        .count()
}
