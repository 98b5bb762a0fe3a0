//! Where glibc keeps a thread's pthread-key values, measured on the loader's own thread (the
//! targets use the same system glibc), so no glibc struct offset is compiled in.

use std::{fs::File, os::unix::fs::FileExt as _};

use anyhow::{Context as _, Result, bail, ensure};

/// glibc keeps the values of keys 0..32 in `struct pthread`'s `specific_1stblock`, an array of
/// `{ seq, data }` pairs of 16 bytes.
pub const FIRST_BLOCK_KEYS: u32 = 32;
/// How far into `struct pthread` to look for the block (it sits at 784 on glibc 2.36).
const SEARCH_BYTES: usize = 2048;
const ARCH_GET_FS: libc::c_int = 0x1003;

/// The offset of `specific_1stblock` in `struct pthread`: a key's value is at
/// `thread pointer + offset + 16 * key + 8`.
pub fn specific_offset() -> Result<u32> {
    let thread = thread_pointer()?;
    // SAFETY: pthread_self has no preconditions.
    let this = unsafe { libc::pthread_self() } as u64;
    ensure!(
        thread == this,
        "the thread pointer ({thread:#x}) is not the pthread ({this:#x}): not x86_64 glibc's \
         TLS layout"
    );
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: key is a valid out-parameter; no destructor.
    if unsafe { libc::pthread_key_create(&mut key, None) } != 0 {
        bail!("pthread_key_create failed");
    }
    let found = locate_key_value(this, key);
    // SAFETY: the key was created above.
    unsafe { libc::pthread_key_delete(key) };
    let offset = found?;
    let slot = 16 * key as usize + 8;
    ensure!(offset >= slot, "pthread key value at an unexpected place");
    Ok((offset - slot) as u32)
}

fn thread_pointer() -> Result<u64> {
    let mut fs: u64 = 0;
    // SAFETY: ARCH_GET_FS writes the fs base into `fs`.
    let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_FS, &mut fs as *mut u64) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("arch_prctl(ARCH_GET_FS)");
    }
    Ok(fs)
}

/// Sets a distinctive value for `key` and finds where it landed in our `struct pthread`.
fn locate_key_value(pthread: u64, key: libc::pthread_key_t) -> Result<usize> {
    ensure!(
        key < FIRST_BLOCK_KEYS,
        "pthread key {key} is beyond the first block"
    );
    let marker = &SEARCH_BYTES as *const usize as u64;
    // SAFETY: the key exists; the value is only compared, never dereferenced.
    if unsafe { libc::pthread_setspecific(key, marker as *const libc::c_void) } != 0 {
        bail!("pthread_setspecific failed");
    }
    // Read through /proc/self/mem: a read past the struct fails instead of faulting.
    let mem = File::open("/proc/self/mem").context("opening /proc/self/mem")?;
    let mut bytes = vec![0u8; SEARCH_BYTES];
    mem.read_exact_at(&mut bytes, pthread)
        .context("reading this thread's struct pthread")?;
    bytes
        .chunks_exact(8)
        .position(|word| u64::from_ne_bytes(word.try_into().expect("8 bytes")) == marker)
        .map(|index| index * 8)
        .context("pthread key value not found in struct pthread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_key_block_of_this_glibc() {
        let offset = specific_offset().unwrap();
        // A key's value read back through the measured offset is the value set.
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: a key of our own, with no destructor.
        unsafe { libc::pthread_key_create(&mut key, None) };
        let value = 0x1234_5678usize;
        // SAFETY: the key was just created; the value is only an integer, never dereferenced.
        unsafe { libc::pthread_setspecific(key, value as *const libc::c_void) };
        // SAFETY: no arguments.
        let thread = unsafe { libc::pthread_self() } as usize;
        let slot = thread + offset as usize + 16 * key as usize + 8;
        // SAFETY: this thread's `struct pthread`, where the value just set is read back (the
        // offset was found by the same search, which only reads within it).
        assert_eq!(unsafe { *(slot as *const usize) }, value);
        // SAFETY: the key created above, deleted once.
        unsafe { libc::pthread_key_delete(key) };
    }
}
