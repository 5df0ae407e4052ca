//! A small tmpfs for the disk-full tests (root only; skipped with a
//! message elsewhere, required when CI=true), and ways to fill it.

use std::path::Path;
use std::process::Command;

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must run this test"
            );
            eprintln!("skipped: the disk-full test needs root (it mounts a tmpfs)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs failed");
        Some(Tmpfs(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Fills the file system with a file, leaving about `leave` bytes free.
pub fn fill(dir: &Path, leave: u64) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![7u8; 4096];
    use std::io::Write;
    loop {
        let free = fs_free(dir);
        if free <= leave + 4096 {
            break;
        }
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    f.sync_all().ok();
    filler
}

/// Removes the filler and waits until its space is free: a child process
/// forked by another test thread holds the file open until its `exec`.
pub fn free(filler: &Path) {
    let dir = filler.parent().unwrap();
    let size = std::fs::metadata(filler).unwrap().len();
    let before = fs_free(dir);
    std::fs::remove_file(filler).unwrap();
    for _ in 0..500 {
        if fs_free(dir) >= before + size / 2 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("the filler's space was not freed");
}

pub fn fs_free(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
