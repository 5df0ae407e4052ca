//! A PostgreSQL server for the tests: `initdb` into a temporary directory
//! (as the `postgres` user when the tests run as root), `pg_ctl` on a free
//! loopback port. Without a server (no PostgreSQL installed) the tests
//! that need one are skipped, except under `CI=true`, where they fail.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server, stopped (immediately) and deleted when dropped.
pub struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    user: Option<(u32, u32)>,
}

/// The directory of `initdb` and `pg_ctl`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else what `pg_config --bindir` says.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Some(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.join("initdb").exists().then_some(dir)
}

/// The uid and gid of `postgres`, when the tests run as root (initdb
/// refuses root).
fn server_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|e| e.to_string())?;
    // SAFETY: name is a valid C string; the result is read at once, on this
    // thread, before any other getpw* call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err("running as root, and there is no postgres user to run the server".into());
    }
    // SAFETY: pw is not null and points to a passwd entry.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some((uid, gid)))
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

impl Server {
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            c.uid(uid).gid(gid);
        }
        c.stdin(Stdio::null());
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts a new server of its own.
    pub fn start() -> Result<Server, String> {
        let bin = bin_dir().ok_or("no PostgreSQL server is installed (no initdb found)")?;
        let user = server_user()?;
        let dir = tempfile::Builder::new()
            .prefix("tastypod-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        }
        let mut server = Server {
            dir,
            bin,
            port: 0,
            user,
        };
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        server.port = free_port()?;
        server.pg_ctl_start()?;
        Ok(server)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200 -c fsync=on -c synchronous_commit=on",
            self.port,
            self.data().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.data().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.data().join("server.log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl start failed: {}{}",
                String::from_utf8_lossy(&out.stderr),
                log
            ));
        }
        Ok(())
    }

    /// Stops the server at once (`-m immediate`: no shutdown checkpoint,
    /// as a crash would) and starts it again on the same port.
    pub fn restart_immediately(&self) -> Result<(), String> {
        self.stop("immediate")?;
        self.pg_ctl_start()
    }

    fn stop(&self, mode: &str) -> Result<(), String> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", mode, "stop"])
            .output()
            .map_err(|e| format!("pg_ctl stop: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A URL for a tracker of its own (`NAME-N`, N counting up).
    pub fn url(&self, name: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?tracker={name}-{}-{}",
            self.port,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
    }
}

static SHARED: OnceLock<Result<Server, String>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Ok(server)) = SHARED.get() {
        let _ = server.stop("immediate");
        let _ = std::fs::remove_dir_all(server.dir());
    }
}

fn must_run() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The server the tests of this binary share, started on first use and
/// stopped when the process exits; `None` (the test is skipped, with a
/// note) if none can be started, which fails the test under `CI=true`.
pub fn shared() -> Option<&'static Server> {
    let server = SHARED.get_or_init(|| {
        let server = Server::start();
        if server.is_ok() {
            // SAFETY: stop_shared is an extern "C" fn taking nothing, as
            // atexit requires.
            unsafe { libc::atexit(stop_shared) };
        }
        server
    });
    match server {
        Ok(server) => Some(server),
        Err(why) => skip(why),
    }
}

/// A server of the test's own (for tests that stop it), or `None` as in
/// [`shared`].
pub fn own() -> Option<Server> {
    match Server::start() {
        Ok(server) => Some(server),
        Err(why) => {
            skip::<()>(&why);
            None
        }
    }
}

fn skip<T>(why: &str) -> Option<T> {
    assert!(
        !must_run(),
        "CI=true and no PostgreSQL server could be started: {why}"
    );
    eprintln!("skipped: no PostgreSQL server could be started: {why}");
    None
}
