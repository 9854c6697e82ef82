//! A first-come, first-served queue for writers, in front of SQLite's
//! write lock.
//!
//! Why: SQLite's write lock has no queue. Waiters poll it, and a newcomer
//! can take it ahead of a process that has already waited many rounds. With
//! four concurrent `reserve` calls, each holding the lock for about 3 ms, the
//! unluckiest waited 40–70 ms (measured). Here every writer takes a ticket
//! and waits for the writers that took earlier tickets, so a wait is
//! bounded by the work queued ahead, not by luck.
//!
//! How: a small file beside the ledger (`<ledger>-queue`) and Linux
//! open-file-description (OFD) byte-range locks, which belong to one open
//! file (so threads of one process queue too) and which the kernel drops when
//! their holder exits or is killed (so a crashed writer never blocks the
//! queue).
//! - Bytes `0..8` hold the next ticket (little-endian `u64`); a lock on
//!   byte 0 guards it for the microseconds it takes to read and bump it.
//! - The holder of ticket `t` locks byte `SLOT_BASE + t mod SLOT_SPAN` from
//!   the moment it takes the ticket until its transaction has ended, and
//!   waits until it can lock the bytes of every earlier ticket at once:
//!   every writer ahead is done, gave up, or died.
//!
//! Correctness never depends on the queue: SQLite's own lock still guards
//! every write, and a writer that cannot use the queue file (read-only
//! directory, another OS) goes straight to SQLite's lock. The file's content
//! need not survive a crash (no writer survives one either).

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// First byte of the per-ticket lock range.
const SLOT_BASE: i64 = 1 << 20;
/// Tickets map to `SLOT_SPAN` lock bytes; 2^40 tickets never wrap in practice.
const SLOT_SPAN: u64 = 1 << 40;

/// The queue file of the ledger at `ledger_path`: beside the file itself
/// (symbolic links resolved), so every path to one ledger names one queue.
pub fn queue_path(ledger_path: &Path) -> PathBuf {
    let resolved = std::fs::canonicalize(ledger_path).unwrap_or_else(|_| ledger_path.to_path_buf());
    let mut name = resolved.into_os_string();
    name.push("-queue");
    PathBuf::from(name)
}

/// A place in the queue: while it lives, the writers behind it wait.
/// Dropping it (or the process ending) lets the next writer go.
#[derive(Debug)]
pub struct Turn {
    #[allow(dead_code)] // held for its locks, which go with it
    file: Option<File>,
    /// The ticket taken (`None` without a queue).
    pub ticket: Option<u64>,
}

/// Waits for this writer's turn: takes a ticket, then waits until every
/// writer that took an earlier ticket is done, at most `timeout` (then
/// exit 4, like a busy database). Without a usable queue file, returns at
/// once with no ticket (SQLite's lock alone then orders the writers).
pub fn wait_turn(ledger_path: &Path, timeout: Duration) -> Result<Turn> {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(queue_path(ledger_path))
    {
        Ok(file) => file,
        Err(_) => {
            return Ok(Turn {
                file: None,
                ticket: None,
            })
        }
    };
    // Whoever may write the ledger may queue: a new queue file gets the
    // ledger's permissions, as SQLite gives its -wal and -shm files.
    if file.metadata().is_ok_and(|meta| meta.len() == 0) {
        if let Ok(ledger) = std::fs::metadata(ledger_path) {
            let _ = file.set_permissions(ledger.permissions());
        }
    }
    platform::wait_turn(file, timeout)
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;
    use nix::errno::Errno;
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;
    use std::os::unix::fs::FileExt;

    fn range(kind: libc::c_short, start: i64, length: i64) -> libc::flock {
        libc::flock {
            l_type: kind,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: start,
            l_len: length,
            l_pid: 0, // must be 0 for OFD locks
        }
    }

    /// Tries to lock `length` bytes from `start`, all or none; `Ok(false)`
    /// when another holder has any of them.
    fn try_lock(file: &File, start: i64, length: i64) -> Result<bool> {
        let lock = range(libc::F_WRLCK as _, start, length);
        match fcntl(file, FcntlArg::F_OFD_SETLK(&lock)) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(err) => Err(Error::Environment(format!(
                "the writer queue cannot be locked: {err}"
            ))),
        }
    }

    fn unlock(file: &File, start: i64, length: i64) {
        // Unlocking bytes we hold cannot fail; closing the file would drop them anyway.
        let _ = fcntl(
            file,
            FcntlArg::F_OFD_SETLK(&range(libc::F_UNLCK as _, start, length)),
        );
    }

    /// Locks `length` bytes from `start`, polling briefly (the order of
    /// turns comes from the tickets, so polling costs no fairness).
    fn lock_until(file: &File, start: i64, length: i64, deadline: Instant) -> Result<bool> {
        let mut attempt: u32 = 0;
        loop {
            if try_lock(file, start, length)? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            let pause_us = match attempt {
                0..=19 => 50,
                20..=999 => 200,
                _ => 1_000,
            };
            std::thread::sleep(Duration::from_micros(pause_us));
            attempt = attempt.saturating_add(1);
        }
    }

    fn slot(ticket: u64) -> i64 {
        SLOT_BASE + (ticket % SLOT_SPAN) as i64
    }

    fn timed_out(timeout: Duration) -> Error {
        Error::Environment(format!(
            "the ledger is locked by another writer past the busy timeout ({} ms); \
             try again once the other writer (often the nightly import) has finished",
            timeout.as_millis()
        ))
    }

    pub(super) fn wait_turn(file: File, timeout: Duration) -> Result<Turn> {
        let deadline = Instant::now() + timeout;
        // 1. Take a ticket and lock its byte, under the counter lock.
        if !lock_until(&file, 0, 1, deadline)? {
            return Err(timed_out(timeout));
        }
        let taken = (|| {
            let mut bytes = [0u8; 8];
            let read = file.read_at(&mut bytes, 0)?;
            let ticket = if read == 8 {
                u64::from_le_bytes(bytes)
            } else {
                0 // a new queue file
            };
            let next = ticket.wrapping_add(1);
            file.write_all_at(&next.to_le_bytes(), 0)?;
            Ok::<u64, std::io::Error>(ticket)
        })();
        let ticket = match taken {
            Ok(ticket) => ticket,
            Err(err) => {
                unlock(&file, 0, 1);
                return Err(Error::from(err));
            }
        };
        // Nobody else can hold a fresh ticket's byte.
        let mine = try_lock(&file, slot(ticket), 1);
        unlock(&file, 0, 1);
        if !mine? {
            return Err(Error::Environment(format!(
                "the writer queue is inconsistent (ticket {ticket} is taken)"
            )));
        }
        // 2. Wait until the bytes of every earlier ticket are free, in one
        //    lock taken all at once: every writer ahead is done, or gone (a
        //    writer that gave up or died frees its byte, but the writers
        //    ahead of it still hold theirs).
        let ahead = slot(ticket) - SLOT_BASE;
        if ahead > 0 {
            if !lock_until(&file, SLOT_BASE, ahead, deadline)? {
                return Err(timed_out(timeout)); // dropping `file` frees our byte
            }
            unlock(&file, SLOT_BASE, ahead);
        }
        Ok(Turn {
            file: Some(file),
            ticket: Some(ticket),
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::*;

    pub(super) fn wait_turn(_file: File, _timeout: Duration) -> Result<Turn> {
        Ok(Turn {
            file: None,
            ticket: None,
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The next ticket the queue file will give out.
    fn next_ticket(ledger: &Path) -> u64 {
        let bytes = std::fs::read(queue_path(ledger)).unwrap_or_default();
        bytes
            .get(..8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
    }

    #[test]
    fn writers_get_their_turn_in_ticket_order() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite");
        let first = wait_turn(&ledger, Duration::from_secs(5)).unwrap();
        assert_eq!(first.ticket, Some(0));
        let (done, order) = mpsc::channel();
        let mut waiters = Vec::new();
        for writer in 1..=4u64 {
            let (ledger_path, done) = (ledger.clone(), done.clone());
            waiters.push(std::thread::spawn(move || {
                let turn = wait_turn(&ledger_path, Duration::from_secs(5)).unwrap();
                assert_eq!(turn.ticket, Some(writer));
                done.send(writer).unwrap();
                // Hold the turn a little so the writers behind really wait.
                std::thread::sleep(Duration::from_millis(5));
            }));
            // The next writer starts only once this one holds its ticket.
            while next_ticket(&ledger) != writer + 1 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            order.try_recv().is_err(),
            "nobody goes while ticket 0 is held"
        );
        drop(first);
        for waiter in waiters {
            waiter.join().unwrap();
        }
        let seen: Vec<u64> = order.try_iter().collect();
        assert_eq!(seen, vec![1, 2, 3, 4]);
    }

    #[test]
    fn a_waiter_gives_up_at_the_timeout_and_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite");
        let holder = wait_turn(&ledger, Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        let err = wait_turn(&ledger, Duration::from_millis(50)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(err.exit_code(), 4, "{err}");
        // The writer behind the one that gave up still waits for the holder,
        // and is not stuck behind the one that gave up.
        let err = wait_turn(&ledger, Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.exit_code(), 4, "{err}");
        drop(holder);
        let next = wait_turn(&ledger, Duration::from_millis(500)).unwrap();
        assert_eq!(next.ticket, Some(3));
    }

    #[test]
    fn a_dropped_turn_lets_the_next_writer_go_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite");
        for ticket in 0..3 {
            let turn = wait_turn(&ledger, Duration::from_millis(100)).unwrap();
            assert_eq!(turn.ticket, Some(ticket));
        }
    }

    #[test]
    fn a_link_to_the_ledger_names_the_same_queue() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite");
        std::fs::write(&ledger, b"").unwrap();
        let link = dir.path().join("link.sqlite");
        std::os::unix::fs::symlink(&ledger, &link).unwrap();
        assert_eq!(queue_path(&link), queue_path(&ledger));
        assert_eq!(
            queue_path(&ledger),
            std::fs::canonicalize(dir.path())
                .unwrap()
                .join("ledger.sqlite-queue")
        );
    }

    #[test]
    fn a_new_queue_file_gets_the_ledger_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger.sqlite");
        std::fs::write(&ledger, b"").unwrap();
        std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o664)).unwrap();
        drop(wait_turn(&ledger, Duration::from_secs(1)).unwrap());
        let mode = std::fs::metadata(queue_path(&ledger))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o664);
    }

    #[test]
    fn no_queue_file_no_queue() {
        let turn = wait_turn(
            Path::new("/nonexistent-dir/ledger.sqlite"),
            Duration::from_millis(10),
        )
        .unwrap();
        assert_eq!(turn.ticket, None);
    }
}
