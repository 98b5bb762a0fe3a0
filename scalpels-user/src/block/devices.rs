//! Block device names (`vda`, `loop3`, `nvme0n1p2`) for the kernel's `dev_t` numbers.

use std::{collections::HashMap, path::Path};

/// Splits a kernel-internal `dev_t` (major << 20 | minor, as tracepoints record it).
pub fn major_minor(dev: u32) -> (u32, u32) {
    (dev >> 20, dev & ((1 << 20) - 1))
}

/// Names devices from `/sys/dev/block/MAJ:MIN`, remembering each answer.
#[derive(Default)]
pub struct DeviceNames {
    known: HashMap<u32, String>,
}

impl DeviceNames {
    pub fn name(&mut self, dev: u32) -> &str {
        self.known.entry(dev).or_insert_with(|| {
            let (major, minor) = major_minor(dev);
            let link = format!("/sys/dev/block/{major}:{minor}");
            std::fs::read_link(&link)
                .ok()
                .and_then(|target| Some(Path::new(target.file_name()?).display().to_string()))
                .unwrap_or_else(|| format!("{major}:{minor}"))
        })
    }
}

/// `MAJ:MIN` of a kernel `dev_t`.
pub fn number(dev: u32) -> String {
    let (major, minor) = major_minor(dev);
    format!("{major}:{minor}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_kernel_dev_t() {
        assert_eq!(major_minor((254 << 20) | 3), (254, 3));
        assert_eq!(number(7 << 20), "7:0");
    }
}
