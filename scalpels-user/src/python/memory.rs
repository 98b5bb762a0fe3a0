//! Reading another process's memory, and the few CPython objects symbolization needs from it
//! (`str` and `bytes`), with `process_vm_readv`: no ptrace stop, one system call per read.

use std::io;

use anyhow::{Context as _, Result, bail, ensure};

use super::versions::Layout;

/// `PyObject_VAR_HEAD.ob_size` and `PyASCIIObject.length`: at 16 in every supported version.
const VAR_SIZE: u64 = 16;
/// `PyBytesObject.ob_sval`.
const BYTES_DATA: u64 = 32;
/// `PyASCIIObject.state`, a bit field: `interned:2, kind:3, compact:1, ascii:1, ...`.
const STR_STATE: u64 = 32;
const STATE_KIND_SHIFT: u32 = 2;
const STATE_COMPACT: u32 = 1 << 5;
const STATE_ASCII: u32 = 1 << 6;

/// Names and paths longer than this are garbage (a stale or wrong pointer), not text.
const MAX_STR_CHARS: u64 = 64 * 1024;
/// Line tables grow with the function: a 64 KiB cap would refuse huge generated functions.
const MAX_BYTES_LEN: u64 = 1024 * 1024;

/// Most iovecs `process_vm_readv` takes in one call (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;
const WORD: usize = size_of::<u64>();

/// The memory of process `pid`, read without stopping it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessMemory {
    pub pid: u32,
}

impl ProcessMemory {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    /// Fills `buf` from `addr`; a read that stops short (an unmapped page) is an error.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: `local` covers exactly `buf`, which is writable for the call's duration;
        // `remote` is only read, by the kernel, in the other process.
        let read =
            unsafe { libc::process_vm_readv(self.pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        match read {
            -1 => Err(io::Error::last_os_error()),
            n if n as usize == buf.len() => Ok(()),
            n => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read {n} of {} bytes at {addr:#x}", buf.len()),
            )),
        }
    }

    /// The runs of `len` words starting at `starts`, read with as few system calls as the
    /// kernel allows (one per [`IOV_MAX`] runs, and one more after each run that cannot be
    /// read: it transfers whole iovecs only); `len` entries per start, `None` for a run that
    /// could not be read. A run is one iovec, so neighbouring fields cost one page lookup.
    pub fn read_runs(&self, starts: &[u64], len: usize) -> Vec<Option<u64>> {
        let run_bytes = len * WORD;
        let mut words = vec![0u64; starts.len() * len];
        let mut read = vec![false; starts.len()];
        let mut at = 0;
        while at < starts.len() && len > 0 {
            let end = (at + IOV_MAX).min(starts.len());
            let local: Vec<libc::iovec> = words[at * len..end * len]
                .chunks_exact_mut(len)
                .map(|run| libc::iovec {
                    iov_base: run.as_mut_ptr().cast(),
                    iov_len: run_bytes,
                })
                .collect();
            let remote: Vec<libc::iovec> = starts[at..end]
                .iter()
                .map(|&addr| libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: run_bytes,
                })
                .collect();
            // SAFETY: each local iovec covers one run of `words`, writable for the call; the
            // remote ones are only read, by the kernel, in the other process.
            let bytes = unsafe {
                libc::process_vm_readv(
                    self.pid as libc::pid_t,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            if bytes < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
                break;
            }
            // The kernel stops at the first run it cannot read: those before it are read,
            // that one is not, and the rest are asked again.
            let done = usize::try_from(bytes).map_or(0, |bytes| bytes / run_bytes);
            read[at..at + done].fill(true);
            at += done + 1;
        }
        words
            .chunks_exact(len.max(1))
            .zip(read)
            .flat_map(|(run, read)| run.iter().map(move |&word| read.then_some(word)))
            .collect()
    }

    fn read_array<const N: usize>(&self, addr: u64) -> io::Result<[u8; N]> {
        let mut buf = [0; N];
        self.read(addr, &mut buf)?;
        Ok(buf)
    }

    pub fn read_u64(&self, addr: u64) -> io::Result<u64> {
        self.read_array(addr).map(u64::from_ne_bytes)
    }

    pub fn read_u32(&self, addr: u64) -> io::Result<u32> {
        self.read_array(addr).map(u32::from_ne_bytes)
    }

    pub fn read_i32(&self, addr: u64) -> io::Result<i32> {
        self.read_array(addr).map(i32::from_ne_bytes)
    }

    /// The NUL-terminated UTF-8 string at `addr` (at most `MAX_STR_CHARS` bytes), read page by
    /// page so a string ending just before an unmapped page is still read.
    pub fn read_c_str(&self, addr: u64) -> Result<String> {
        const PAGE: u64 = 4096;
        let mut text = Vec::new();
        let mut at = addr;
        while (text.len() as u64) < MAX_STR_CHARS {
            let mut chunk = vec![0; (PAGE - at % PAGE).min(256) as usize];
            self.read(at, &mut chunk)
                .with_context(|| format!("reading the C string at {addr:#x}"))?;
            if let Some(end) = chunk.iter().position(|&b| b == 0) {
                text.extend_from_slice(&chunk[..end]);
                return Ok(String::from_utf8_lossy(&text).into_owned());
            }
            at += chunk.len() as u64;
            text.extend(chunk);
        }
        bail!("the C string at {addr:#x} is longer than {MAX_STR_CHARS} bytes")
    }

    /// Used by the tests that walk live interpreters as the kernel side does.
    #[cfg(test)]
    pub fn read_u8(&self, addr: u64) -> io::Result<u8> {
        self.read_array(addr).map(u8::from_ne_bytes)
    }

    /// The text of the `str` object at `addr`. Compact strings (every name and path in a code
    /// object) are read directly: ASCII as is, others decoded from their 1-, 2- or 4-byte
    /// characters, because the cached UTF-8 copy exists only if something asked for it. The
    /// legacy non-compact form is refused.
    pub fn read_ascii_str(&self, addr: u64, layout: &Layout) -> Result<String> {
        let chars = self
            .read_u64(addr.wrapping_add(VAR_SIZE))
            .with_context(|| format!("reading the length of str at {addr:#x}"))?;
        ensure!(
            chars <= MAX_STR_CHARS,
            "str at {addr:#x} claims {chars} characters"
        );
        let state = self
            .read_u32(addr.wrapping_add(STR_STATE))
            .with_context(|| format!("reading the state of str at {addr:#x}"))?;
        if state & STATE_COMPACT == 0 {
            bail!("str at {addr:#x} is not compact (state {state:#x})");
        }
        if state & STATE_ASCII != 0 {
            let mut text = vec![0; chars as usize];
            self.read(addr.wrapping_add(u64::from(layout.ascii_data)), &mut text)
                .with_context(|| format!("reading the characters of str at {addr:#x}"))?;
            ensure!(
                text.is_ascii(),
                "str at {addr:#x} is marked ASCII but is not"
            );
            return Ok(String::from_utf8(text).expect("ASCII is UTF-8"));
        }
        let kind = (state >> STATE_KIND_SHIFT) & 7;
        ensure!(
            matches!(kind, 1 | 2 | 4),
            "str at {addr:#x} has character size {kind}"
        );
        let mut raw = vec![0; chars as usize * kind as usize];
        self.read(addr.wrapping_add(u64::from(layout.compact_data)), &mut raw)
            .with_context(|| format!("reading the characters of str at {addr:#x}"))?;
        Ok(decode_chars(&raw, kind as usize))
    }

    /// The contents of the `bytes` object at `addr`.
    pub fn read_bytes_object(&self, addr: u64) -> Result<Vec<u8>> {
        let len = self
            .read_u64(addr.wrapping_add(VAR_SIZE))
            .with_context(|| format!("reading the size of bytes at {addr:#x}"))?;
        ensure!(
            len <= MAX_BYTES_LEN,
            "bytes at {addr:#x} claims {len} bytes"
        );
        let mut data = vec![0; len as usize];
        self.read(addr.wrapping_add(BYTES_DATA), &mut data)
            .with_context(|| format!("reading the contents of bytes at {addr:#x}"))?;
        Ok(data)
    }
}

/// Characters stored `kind` bytes each (Latin-1, UCS-2 or UCS-4) as a `String`.
fn decode_chars(raw: &[u8], kind: usize) -> String {
    raw.chunks_exact(kind)
        .map(|c| {
            let code = match kind {
                1 => u32::from(c[0]),
                2 => u32::from(u16::from_ne_bytes([c[0], c[1]])),
                _ => u32::from_ne_bytes([c[0], c[1], c[2], c[3]]),
            };
            // Lone surrogates (from `surrogateescape` file names) have no `char`.
            char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_memory_reads_this_process() {
        let value: u64 = 0x1122_3344_5566_7788;
        let mem = ProcessMemory::new(std::process::id());
        let addr = &value as *const u64 as u64;
        assert_eq!(mem.read_u64(addr).unwrap(), value);
        assert_eq!(mem.read_u32(addr).unwrap(), 0x5566_7788);
        assert_eq!(mem.read_i32(addr + 4).unwrap(), 0x1122_3344);
        assert_eq!(mem.read_u8(addr).unwrap(), 0x88);
        assert!(mem.read_u64(0).is_err());
        let text = c"counted";
        assert_eq!(mem.read_c_str(text.as_ptr() as u64).unwrap(), "counted");
    }

    #[test]
    fn python_words_are_read_together_and_unreadable_ones_are_none() {
        let values: Vec<u64> = (1..=1500).collect();
        let mem = ProcessMemory::new(std::process::id());
        let mut addresses: Vec<u64> = values.iter().map(|v| v as *const u64 as u64).collect();
        // An unmapped word in the middle, and one at the end: the others are still read,
        // across more than one call's worth of iovecs.
        addresses.insert(700, 8);
        addresses.push(16);
        let words = mem.read_runs(&addresses, 1);
        assert_eq!(words.len(), 1502);
        assert_eq!(words[700], None);
        assert_eq!(words[1501], None);
        let read: Vec<u64> = words.iter().flatten().copied().collect();
        assert_eq!(read, values);
        // Runs of three words: each read whole, or not at all.
        let starts = [values.as_ptr() as u64, 8, values[10..].as_ptr() as u64];
        assert_eq!(
            mem.read_runs(&starts, 3),
            [
                Some(1),
                Some(2),
                Some(3),
                None,
                None,
                None,
                Some(11),
                Some(12),
                Some(13)
            ]
        );
    }

    #[test]
    fn python_objects_at_wild_addresses_are_errors() {
        // A pointer read from a running interpreter can be stale: near the top of the address
        // space, the object's fields wrap around instead of overflowing.
        let mem = ProcessMemory::new(std::process::id());
        let layout = super::super::versions::layout(3, 12).expect("3.12 layout");
        assert!(mem.read_ascii_str(u64::MAX - 8, &layout).is_err());
        assert!(mem.read_bytes_object(u64::MAX - 8).is_err());
    }

    #[test]
    fn python_strs_decode_every_character_size() {
        assert_eq!(decode_chars(&[b'c', 0xe9], 1), "cé");
        let ucs2: Vec<u8> = [0x65e5u16, 0x672c]
            .iter()
            .flat_map(|c| c.to_ne_bytes())
            .collect();
        assert_eq!(decode_chars(&ucs2, 2), "日本");
        let ucs4: Vec<u8> = [0x1f40du32, 0xdc80]
            .iter()
            .flat_map(|c| c.to_ne_bytes())
            .collect();
        assert_eq!(decode_chars(&ucs4, 4), "🐍\u{fffd}");
    }
}
