//! Processes as they start, from the kernel's process events connector (netlink,
//! `CONFIG_PROC_EVENTS`): a service waited for is found within a moment of its `exec`, where a
//! scan of /proc would find it up to a scan period later, after its first imports.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result};
use tokio::io::{Interest, unix::AsyncFd};

// From <linux/connector.h> and <linux/cn_proc.h>.
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_EVENT_EXEC: u32 = 0x2;
const PROC_EVENT_COMM: u32 = 0x200;

const NLMSG_HDR_LEN: usize = 16;
/// `struct cn_msg` before its data: id (idx, val), seq, ack, len, flags.
const CN_MSG_LEN: usize = 20;
/// In `struct proc_event`: `what`, then the event's data (after cpu and an 8-byte timestamp);
/// exec and comm events start with (pid, tgid).
const WHAT_AT: usize = NLMSG_HDR_LEN + CN_MSG_LEN;
const TGID_AT: usize = WHAT_AT + 16 + 4;

/// What the kernel said since the last look.
pub enum News {
    /// Processes that exec'd or renamed themselves (their name is what a service is found by).
    Started(Vec<u32>),
    /// The socket overflowed: some events were lost, so the caller should look at /proc.
    Lost,
}

/// A subscription to the kernel's process events.
pub struct Execs {
    socket: AsyncFd<OwnedFd>,
}

impl Execs {
    /// Subscribes. Fails where the connector cannot be reached: a kernel built without it, or a
    /// network namespace other than the host's (the connector lives in the host's only).
    pub fn subscribe() -> Result<Self> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("opening the process events socket");
        }
        // SAFETY: fd was just returned by socket(2) and nothing else owns it.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; all zeroes is a valid value.
        let mut address: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as u16;
        address.nl_groups = CN_IDX_PROC;
        // SAFETY: address is a sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&raw const address).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if bound < 0 {
            return Err(io::Error::last_os_error()).context("binding the process events socket");
        }
        let listen = listen_request();
        // SAFETY: the buffer is valid for its length. A netlink send without a destination goes
        // to the kernel, whose connector takes the request.
        let sent =
            unsafe { libc::send(socket.as_raw_fd(), listen.as_ptr().cast(), listen.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error()).context("subscribing to process events");
        }
        // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open and unchanged for its
        // whole life.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("watching the process events socket: {e}"))?;
        Ok(Self { socket })
    }

    /// Waits until a process execs or renames itself (or events were lost).
    pub async fn next(&mut self) -> Result<News> {
        let mut started = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let mut ready = self
                .socket
                .readable()
                .await
                .context("waiting for process events")?;
            // Everything queued is read before the caller looks, so a burst of forks is one look.
            loop {
                // SAFETY: the buffer is valid for writes of its length.
                let got = unsafe {
                    libc::recv(
                        self.socket.get_ref().as_raw_fd(),
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        0,
                    )
                };
                if got >= 0 {
                    parse(&buffer[..got as usize], &mut started);
                    continue;
                }
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        ready.clear_ready();
                        break;
                    }
                    Some(libc::ENOBUFS) => return Ok(News::Lost),
                    Some(libc::EINTR) => {}
                    _ => return Err(error).context("reading process events"),
                }
            }
            if !started.is_empty() {
                return Ok(News::Started(started));
            }
        }
    }
}

/// The netlink message that subscribes to process events (`PROC_CN_MCAST_LISTEN`; the 4-byte
/// form, which every kernel with the connector takes, for all event types).
fn listen_request() -> Vec<u8> {
    let len = NLMSG_HDR_LEN + CN_MSG_LEN + 4;
    let mut message = Vec::with_capacity(len);
    message.extend((len as u32).to_ne_bytes());
    message.extend((libc::NLMSG_DONE as u16).to_ne_bytes());
    message.extend(0u16.to_ne_bytes()); // flags
    message.extend(0u32.to_ne_bytes()); // sequence
    message.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    message.extend(CN_IDX_PROC.to_ne_bytes());
    message.extend(CN_VAL_PROC.to_ne_bytes());
    message.extend(0u32.to_ne_bytes()); // seq
    message.extend(0u32.to_ne_bytes()); // ack
    message.extend(4u16.to_ne_bytes()); // data length
    message.extend(0u16.to_ne_bytes()); // flags
    message.extend(PROC_CN_MCAST_LISTEN.to_ne_bytes());
    message
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Adds to `started` the process of each exec or comm event in one datagram (netlink messages
/// one after the other); forks, exits and the rest are skipped.
fn parse(datagram: &[u8], started: &mut Vec<u32>) {
    let mut rest = datagram;
    while let Some(len) = u32_at(rest, 0).map(|l| l as usize) {
        if len < NLMSG_HDR_LEN || len > rest.len() {
            return;
        }
        let message = &rest[..len];
        let from_proc = u32_at(message, NLMSG_HDR_LEN) == Some(CN_IDX_PROC)
            && u32_at(message, NLMSG_HDR_LEN + 4) == Some(CN_VAL_PROC);
        if from_proc
            && matches!(
                u32_at(message, WHAT_AT),
                Some(PROC_EVENT_EXEC | PROC_EVENT_COMM)
            )
            && let Some(tgid) = u32_at(message, TGID_AT)
        {
            started.push(tgid);
        }
        // Netlink messages are 4-byte aligned.
        rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector message as the kernel sends it: event `what` of process (pid, tgid).
    fn event(what: u32, pid: u32, tgid: u32) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend(what.to_ne_bytes());
        data.extend(0u32.to_ne_bytes()); // cpu
        data.extend(123u64.to_ne_bytes()); // timestamp
        data.extend(pid.to_ne_bytes());
        data.extend(tgid.to_ne_bytes());
        data.extend([0u8; 16]); // comm of a comm event, or padding of the union
        let len = NLMSG_HDR_LEN + CN_MSG_LEN + data.len();
        let mut message = Vec::new();
        message.extend((len as u32).to_ne_bytes());
        message.extend([0u8; 12]);
        message.extend(CN_IDX_PROC.to_ne_bytes());
        message.extend(CN_VAL_PROC.to_ne_bytes());
        message.extend([0u8; 8]);
        message.extend((data.len() as u16).to_ne_bytes());
        message.extend([0u8; 2]);
        message.extend(data);
        message
    }

    #[test]
    fn execs_and_renames_name_their_process_forks_do_not() {
        let mut started = Vec::new();
        parse(&event(PROC_EVENT_EXEC, 42, 42), &mut started);
        parse(&event(0x1, 43, 43), &mut started); // fork
        parse(&event(PROC_EVENT_COMM, 45, 44), &mut started); // a thread renamed
        assert_eq!(started, [42, 44]);
        // Two messages in one datagram, and a cut one after them.
        let mut datagram = event(PROC_EVENT_EXEC, 7, 7);
        datagram.extend(event(PROC_EVENT_EXEC, 8, 8));
        datagram.extend(&event(PROC_EVENT_EXEC, 9, 9)[..30]);
        started.clear();
        parse(&datagram, &mut started);
        assert_eq!(started, [7, 8]);
    }

    #[test]
    fn the_listen_request_is_one_connector_message() {
        let request = listen_request();
        assert_eq!(u32_at(&request, 0), Some(request.len() as u32));
        assert_eq!(u32_at(&request, NLMSG_HDR_LEN), Some(CN_IDX_PROC));
        assert_eq!(
            u32_at(&request, NLMSG_HDR_LEN + CN_MSG_LEN),
            Some(PROC_CN_MCAST_LISTEN)
        );
    }
}
