//! Reading a whole eBPF hash map in a few system calls (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6+),
//! which aya does not wrap. Iterating costs two system calls per entry (next key, then its
//! value): for the statistics maps, read every interval and holding an entry per (thread,
//! system call) or (process, fd, operation, file), that was a tenth of the loader's CPU.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd as _, AsRawFd as _},
};

use aya::{Pod, maps::MapData};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The batch part of the kernel's `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Entries asked for per call at first; doubled when a hash bucket holds more (`ENOSPC`).
const FIRST_COUNT: usize = 1024;

/// Every entry of the hash map `map`, whose keys are `K` and whose values are `slots` `V`s:
/// one for a plain hash map, one per possible CPU for a per-CPU one (the kernel pads each
/// CPU's value to 8 bytes).
pub fn lookup_all<K: Pod, V: Pod>(
    map: &MapData,
    slots: usize,
    per_cpu: bool,
) -> io::Result<Vec<(K, Vec<V>)>> {
    let slot_bytes = if per_cpu {
        size_of::<V>().next_multiple_of(8)
    } else {
        size_of::<V>()
    };
    let value_bytes = slot_bytes * slots;
    let mut count = FIRST_COUNT;
    let mut entries = Vec::new();
    // The kernel's position in the map between calls (a bucket number for hash maps).
    let (mut in_batch, mut out_batch) = (0u64, 0u64);
    let mut first = true;
    loop {
        let mut keys = vec![0u8; count * size_of::<K>()];
        let mut values = vec![0u8; count * value_bytes];
        let mut attr = BatchAttr {
            in_batch: if first {
                0
            } else {
                std::ptr::from_mut(&mut in_batch) as u64
            },
            out_batch: std::ptr::from_mut(&mut out_batch) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: count as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of `count` keys and values and at the two batch
        // tokens, all alive and writable for the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                std::ptr::from_mut(&mut attr),
                size_of::<BatchAttr>(),
            )
        };
        let error = (ret < 0).then(io::Error::last_os_error);
        match error.as_ref().and_then(io::Error::raw_os_error) {
            // A bucket holds more entries than were asked for: ask for more, from the same place.
            Some(libc::ENOSPC) => {
                count *= 2;
                continue;
            }
            Some(libc::ENOENT) | None => {}
            Some(_) => return Err(error.expect("an errno comes from an error")),
        }
        for i in 0..attr.count as usize {
            // SAFETY: the kernel wrote `attr.count` whole keys and values; Pod types are
            // valid for any bytes.
            let key = unsafe {
                keys.as_ptr()
                    .add(i * size_of::<K>())
                    .cast::<K>()
                    .read_unaligned()
            };
            let value = (0..slots)
                .map(|slot| {
                    let at = i * value_bytes + slot * slot_bytes;
                    // SAFETY: as above.
                    unsafe { values.as_ptr().add(at).cast::<V>().read_unaligned() }
                })
                .collect();
            entries.push((key, value));
        }
        if error.is_some() {
            // ENOENT: the whole map was read.
            return Ok(entries);
        }
        in_batch = out_batch;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use aya::maps::{HashMap, IterableMap as _, PerCpuHashMap, PerCpuValues};

    use super::*;

    /// Standalone maps in the running kernel (the tests run as root, as the tracer does).
    #[test]
    fn every_entry_is_read_across_batches_of_both_kinds_of_hash_map() {
        // More entries than one call asks for, so the kernel's batch position is followed.
        const ENTRIES: u32 = 3000;
        let mut plain = HashMap::<MapData, u32, [u64; 3]>::create(4096, 0).unwrap();
        for key in 0..ENTRIES {
            plain.insert(key, [u64::from(key); 3], 0).unwrap();
        }
        let mut read = lookup_all::<u32, [u64; 3]>(plain.map(), 1, false).unwrap();
        read.sort_unstable_by_key(|(key, _)| *key);
        assert_eq!(read.len(), ENTRIES as usize);
        assert!(
            read.iter()
                .all(|(key, value)| *value == [[u64::from(*key); 3]])
        );

        let cpus = aya::util::nr_cpus().unwrap();
        let mut per_cpu = PerCpuHashMap::<MapData, u64, u32>::create(4096, 0).unwrap();
        for key in 0..u64::from(ENTRIES) {
            // A 4-byte value that the kernel pads to 8 per CPU.
            let values: Vec<u32> = (0..cpus).map(|cpu| key as u32 + cpu as u32).collect();
            let values = PerCpuValues::try_from(values).unwrap();
            per_cpu.insert(key, values, 0).unwrap();
        }
        let read = lookup_all::<u64, u32>(per_cpu.map(), cpus, true).unwrap();
        assert_eq!(read.len(), ENTRIES as usize);
        for (key, values) in read {
            let expected: Vec<u32> = (0..cpus).map(|cpu| key as u32 + cpu as u32).collect();
            assert_eq!(values, expected, "key {key}");
        }
    }
}
