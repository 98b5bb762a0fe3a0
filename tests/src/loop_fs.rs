//! A real block device for block-layer tests: an ext4 file system on a loop device, so that
//! nothing else writes to it and /proc/diskstats can cross-check what the tracer saw.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

pub struct LoopFs {
    pub device: String,
    pub mount: PathBuf,
    image: PathBuf,
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not start: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl LoopFs {
    /// A fresh `size_mib` MiB ext4 file system mounted under the temporary directory.
    pub fn new(name: &str, size_mib: u64) -> Self {
        let base =
            std::env::temp_dir().join(format!("scalpels-loop-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let mount = base.join("mnt");
        std::fs::create_dir_all(&mount).expect("create mount point");
        let image = base.join("image");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(size_mib << 20))
            .expect("create image");
        let device = run(
            "losetup",
            &[
                "--find",
                "--show",
                "--direct-io=on",
                image.to_str().unwrap(),
            ],
        );
        // No lazy initialisation: no background writes while a test measures.
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                &device,
            ],
        );
        run("mount", &[&device, mount.to_str().unwrap()]);
        run("sync", &[]);
        LoopFs {
            device,
            mount,
            image,
        }
    }

    /// Waits until the device has had no I/O for a while (mount-time superblock and journal
    /// writes), so that counters read next change only by what a test does.
    pub fn settle(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut last = self.diskstats_sectors();
        while std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(300));
            let now = self.diskstats_sectors();
            if now == last {
                return;
            }
            last = now;
        }
    }

    /// The device's name as /sys/block and /proc/diskstats spell it (`loop3`).
    pub fn name(&self) -> &str {
        self.device.trim_start_matches("/dev/")
    }

    /// (sectors read, sectors written) of the device, from /proc/diskstats.
    pub fn diskstats_sectors(&self) -> (u64, u64) {
        let stats = std::fs::read_to_string("/proc/diskstats").expect("read /proc/diskstats");
        stats
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.get(2) == Some(&self.name()))
            .map(|f| (f[5].parse().unwrap(), f[9].parse().unwrap()))
            .unwrap_or_else(|| panic!("{} is not in /proc/diskstats", self.name()))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.mount.join(file)
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
        if let Some(base) = self.image.parent().map(Path::to_owned) {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}
