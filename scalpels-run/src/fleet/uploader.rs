//! Puts files to a fleet destination in order, on a thread of its own, so a slow network never
//! holds up the tracing loop. Every file is either uploaded or counted as failed with its error
//! (the local copy is kept): nothing is lost without being said.

use std::{
    path::PathBuf,
    sync::mpsc,
    thread::{self, JoinHandle},
};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::destination::Destination;

enum Job {
    Put {
        from: PathBuf,
        key: String,
    },
    /// Answers with the tally once every job queued before it is done.
    Tally(mpsc::Sender<Tally>),
}

/// Errors kept word for word; the count goes on.
const ERRORS_KEPT: usize = 20;

/// What the uploads came to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    pub objects: u64,
    pub bytes: u64,
    pub failed: u64,
    /// The first failed keys with their errors.
    pub errors: Vec<String>,
}

pub struct Uploader {
    jobs: mpsc::Sender<Job>,
    worker: JoinHandle<Tally>,
}

impl Uploader {
    /// Starts the upload thread; with a `probe_key`, once that key could be written to
    /// `destination` (and removed), so a destination that refuses writes fails before anything
    /// else is done. Without, a destination that refuses writes fails each file's put.
    pub fn start(destination: Destination, probe_key: Option<String>) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (probed, probe) = mpsc::channel::<Result<()>>();
        // The thread has the runtime the uploads run on, from the probe on: the caller may be
        // in a runtime of its own (a rotation starts the next run's uploads from the tracing
        // loop), where another can be neither started nor dropped.
        let worker = thread::Builder::new()
            .name("scalpels-upload".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the upload runtime");
                let ready = runtime.and_then(|runtime| {
                    if let Some(key) = &probe_key {
                        runtime.block_on(destination.probe(key))?;
                    }
                    Ok(runtime)
                });
                match ready {
                    Ok(runtime) => {
                        let _ = probed.send(Ok(()));
                        put_all(&runtime, &destination, queue)
                    }
                    Err(e) => {
                        let _ = probed.send(Err(e));
                        Tally::default()
                    }
                }
            })
            .context("starting the upload thread")?;
        probe.recv().context("the upload thread stopped")??;
        Ok(Self { jobs, worker })
    }

    /// Queues `from` to be put at `key`. The file must not change afterwards.
    pub fn upload(&self, from: PathBuf, key: String) {
        // The worker only stops when `finish` drops the sender, or by panicking, which
        // `finish` reports.
        let _ = self.jobs.send(Job::Put { from, key });
    }

    /// Waits for the uploads queued so far; returns what they came to.
    pub fn tally(&self) -> Result<Tally> {
        let (reply, answer) = mpsc::channel();
        let _ = self.jobs.send(Job::Tally(reply));
        answer.recv().context("the upload thread stopped")
    }

    /// Waits for every queued upload.
    pub fn finish(self) -> Result<Tally> {
        drop(self.jobs);
        self.worker
            .join()
            .map_err(|_| anyhow::anyhow!("the upload thread panicked"))
    }
}

/// Puts each queued file to `destination` in turn, until the queue closes; what they came to.
fn put_all(
    runtime: &tokio::runtime::Runtime,
    destination: &Destination,
    queue: mpsc::Receiver<Job>,
) -> Tally {
    let mut tally = Tally::default();
    for job in queue {
        let (from, key) = match job {
            Job::Put { from, key } => (from, key),
            Job::Tally(reply) => {
                let _ = reply.send(tally.clone());
                continue;
            }
        };
        // After a failed put the store is down or refusing: the files left are counted, not
        // tried (each would wait out the client's retries, and a rotation waits for them).
        // One failure keeps the run in staging for `publish` anyway, which puts every file.
        if tally.failed > 0 {
            tally.failed += 1;
            if tally.errors.len() < ERRORS_KEPT {
                let key = destination.describe(&key);
                tally
                    .errors
                    .push(format!("{key}: not tried after the failure above"));
            }
            continue;
        }
        match runtime.block_on(destination.put_file(&from, &key)) {
            Ok(bytes) => {
                tally.objects += 1;
                tally.bytes += bytes;
            }
            Err(e) => {
                let error = format!("{}: {e:#}", destination.describe(&key));
                eprintln!(
                    "scalpels-trace: upload failed, {} is kept: {error}",
                    from.display()
                );
                tally.failed += 1;
                if tally.errors.len() < ERRORS_KEPT {
                    tally.errors.push(error);
                }
            }
        }
    }
    tally
}
