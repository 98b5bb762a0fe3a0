//! Wakes the run loop as soon as any tracer's ring buffer has events, so buffers are drained
//! when they fill rather than on the next poll tick (which stays as a fallback).
//!
//! One epoll instance watches every ring buffer; tokio watches that instance.

use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use anyhow::{Context as _, Result};
use tokio::io::{Interest, unix::AsyncFd};

pub struct EventsReady {
    epoll: AsyncFd<OwnedFd>,
}

impl EventsReady {
    pub fn new(sources: &[BorrowedFd<'_>]) -> Result<Self> {
        // SAFETY: plain syscall; the result is checked.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error()).context("epoll_create1");
        }
        // SAFETY: a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
        for source in sources {
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: source.as_raw_fd() as u64,
            };
            // SAFETY: both descriptors are open; event is a valid epoll_event.
            let rc = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    source.as_raw_fd(),
                    &mut event,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error())
                    .context("watching a ring buffer with epoll");
            }
        }
        // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open and unchanged for
        // its whole life.
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("registering the ring buffers with tokio: {e}"))?;
        Ok(Self { epoll })
    }

    /// Resolves when some ring buffer may have events. The caller drains them all.
    pub async fn wait(&self) -> Result<()> {
        let mut guard = self
            .epoll
            .readable()
            .await
            .context("waiting for ring buffer events")?;
        guard.clear_ready();
        Ok(())
    }
}
