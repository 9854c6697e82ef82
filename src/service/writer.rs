//! The service's one writer (SPEC §6 "Durability and order"): a thread that
//! owns the write connection, takes every pending write request, judges
//! each in arrival order against everything before it (each is a savepoint
//! of one transaction, so the rules module sees the earlier ones), commits
//! them with one fsync, and only then answers them all.

use super::reply::Reply;
use crate::error::{Error, Result};
use crate::store::ledger::Ledger;
use chrono::NaiveDate;
use rusqlite::OptionalExtension;
use std::sync::mpsc::{Receiver, Sender};
use tokio::sync::oneshot;

/// Most requests one group (one transaction, one fsync) carries.
pub const GROUP_REQUESTS_MAX: usize = 512;

/// A write for the writer thread: its work, who asks, and how to answer.
pub struct Job {
    /// The token's name (`token:<name>` is recorded as the actor).
    pub token_name: String,
    /// The ledger clock for this request.
    pub as_of: NaiveDate,
    /// `Idempotency-Key` and the SHA-256 of the request, if given.
    pub idempotency: Option<(String, String)>,
    /// The work.
    pub work: Work,
    /// Runs in a transaction of its own (an import: its fast path reads
    /// the committed ledger on a second connection).
    pub alone: bool,
    /// Where the answer goes.
    pub answer: oneshot::Sender<Reply>,
}

/// What a job does with the ledger: the answer it gives, as a closure over
/// the ledger open in the group's transaction.
pub type Work = Box<dyn FnOnce(&mut Ledger, NaiveDate) -> Reply + Send>;

/// What the writer has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterCounters {
    /// Transactions committed (one fsync each).
    pub groups: std::sync::atomic::AtomicU64,
    /// Requests those transactions carried.
    pub grouped_requests: std::sync::atomic::AtomicU64,
    /// Entries appended through the service.
    pub entries_appended: std::sync::atomic::AtomicU64,
}

/// Starts the writer on `ledger`; it ends when every sender is dropped,
/// after answering what it took.
pub fn spawn(
    ledger: Ledger,
    counters: std::sync::Arc<WriterCounters>,
) -> Result<(Sender<Job>, std::thread::JoinHandle<()>)> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let handle = std::thread::Builder::new()
        .name("qledger-writer".to_string())
        .spawn(move || run(ledger, receiver, &counters))
        .map_err(|err| Error::Environment(format!("cannot start the writer thread: {err}")))?;
    Ok((sender, handle))
}

fn run(mut ledger: Ledger, receiver: Receiver<Job>, counters: &WriterCounters) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_REQUESTS_MAX {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        // Imports run alone; the others share one transaction, in order.
        let mut shared = Vec::new();
        for job in group {
            if job.alone {
                if !shared.is_empty() {
                    run_group(&mut ledger, std::mem::take(&mut shared), counters);
                }
                run_group(&mut ledger, vec![job], counters);
            } else {
                shared.push(job);
            }
        }
        if !shared.is_empty() {
            run_group(&mut ledger, shared, counters);
        }
    }
}

/// Sends `reply` to every one of `answers`.
fn answer_all(answers: impl IntoIterator<Item = oneshot::Sender<Reply>>, reply: &Reply) {
    for answer in answers {
        let _ = answer.send(reply.clone());
    }
}

/// One transaction for every job of `group`, answered after the commit.
fn run_group(ledger: &mut Ledger, group: Vec<Job>, counters: &WriterCounters) {
    use std::sync::atomic::Ordering::Relaxed;
    let count = group.len() as u64;
    let started = ledger
        .check_schema()
        .and_then(|()| ledger.begin_group())
        .and_then(|()| ledger.head());
    let mut entries = match started {
        Ok(head) => head.entries,
        Err(err) => {
            ledger.rollback_group();
            answer_all(
                group.into_iter().map(|job| job.answer),
                &Reply::from_error(&err),
            );
            return;
        }
    };
    let mut answered = Vec::with_capacity(group.len());
    for job in group {
        let Job {
            token_name,
            as_of,
            idempotency,
            work,
            answer,
            alone: _,
        } = job;
        let reply = run_job(
            ledger,
            &mut entries,
            &token_name,
            as_of,
            idempotency.as_ref(),
            work,
        );
        answered.push((answer, reply));
        if !ledger.in_group() {
            break; // an environment error ended the group
        }
    }
    let committed = if ledger.in_group() {
        ledger.commit_group()
    } else {
        // Nothing of the group was committed: every request may retry.
        Err(Error::Environment(
            "the ledger could not be written; nothing was recorded, retry".to_string(),
        ))
    };
    if let Err(err) = committed {
        answer_all(
            answered.into_iter().map(|(answer, _)| answer),
            &Reply::from_error(&err),
        );
        return;
    }
    counters.groups.fetch_add(1, Relaxed);
    counters.grouped_requests.fetch_add(count, Relaxed);
    for (answer, reply) in answered {
        counters
            .entries_appended
            .fetch_add(reply.entries_appended.max(0) as u64, Relaxed);
        let _ = answer.send(reply);
    }
}

/// One job inside the group: its stored answer if it is a retry, else its
/// work (a savepoint of its own) and, with a key, its answer stored in the
/// same transaction. `entries` is the chain's length before it, and after
/// it on return. An environment error rolls the whole group back.
fn run_job(
    ledger: &mut Ledger,
    entries: &mut i64,
    token_name: &str,
    as_of: NaiveDate,
    idempotency: Option<&(String, String)>,
    work: Work,
) -> Reply {
    let stored = match idempotency {
        Some((key, sha)) => stored_reply(ledger, token_name, key, sha),
        None => Ok(None),
    };
    match stored {
        Ok(Some(reply)) => return reply,
        Ok(None) => {}
        Err(err) => {
            ledger.rollback_group();
            return Reply::from_error(&err);
        }
    }
    ledger.set_actor(format!("token:{token_name}"));
    let mut reply = work(ledger, as_of);
    if reply.status == 503 {
        ledger.rollback_group();
        return reply;
    }
    let stored = ledger.head().and_then(|head| {
        reply.entries_appended = head.entries - *entries;
        *entries = head.entries;
        match idempotency {
            Some((key, sha)) => store_reply(ledger, token_name, key, sha, &reply),
            None => Ok(()),
        }
    });
    if let Err(err) = stored {
        ledger.rollback_group();
        return Reply::from_error(&err);
    }
    reply
}

/// The answer stored for (token, key): the same when the request is the
/// same, 422 when it is another.
pub fn stored_reply(
    ledger: &Ledger,
    token_name: &str,
    key: &str,
    request_sha256: &str,
) -> Result<Option<Reply>> {
    let row: Option<(String, i64, String, String)> = ledger
        .conn()
        .prepare_cached(
            "SELECT request_sha256, status, content_type, body FROM service_response \
             WHERE token_name = ?1 AND idempotency_key = ?2",
        )?
        .query_row([token_name, key], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    Ok(row.map(|(sha, status, content_type, body)| {
        if sha == request_sha256 {
            Reply::stored(status as u16, content_type, body)
        } else {
            Reply::error_json(
                422,
                &format!(
                    "Idempotency-Key '{key}' was used for another request; use a new key for a new request"
                ),
            )
        }
    }))
}

fn store_reply(
    ledger: &Ledger,
    token_name: &str,
    key: &str,
    request_sha256: &str,
    reply: &Reply,
) -> Result<()> {
    let answered_at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    ledger
        .conn()
        .prepare_cached(
            "INSERT INTO service_response (token_name, idempotency_key, request_sha256, status, \
             content_type, body, answered_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(rusqlite::params![
            token_name,
            key,
            request_sha256,
            reply.status as i64,
            reply.content_type,
            reply.body,
            answered_at
        ])?;
    Ok(())
}
