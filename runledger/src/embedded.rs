//! A private, throwaway PostgreSQL for examples, tests and benchmarks.
//!
//! [`EmbeddedPostgres::start`] runs `initdb` into a fresh temporary directory, starts the server
//! on a free port of 127.0.0.1 (and a unix socket in the same directory) with trust
//! authentication, and removes everything when dropped. The server binaries are found on the
//! machine (`RUNLEDGER_PG_BINDIR`, `PATH`, `pg_config --bindir`, `/usr/lib/postgresql/*/bin`,
//! `/usr/local/pgsql/bin`). PostgreSQL refuses to run as root: when the process is root, the
//! server runs as the `postgres` system user.
//!
//! Cleanup does not depend on `Drop` alone: a small guardian process watches a pipe from this
//! process and, when the pipe closes (normal exit, panic, `SIGKILL`), stops the server and
//! deletes the directory. A cluster kept in a `static` (as the test support does) is therefore
//! cleaned up too.
//!
//! ```no_run
//! # fn demo() -> Result<(), runledger::Error> {
//! let pg = runledger::EmbeddedPostgres::start()?;
//! println!("connect to {}", pg.url());
//! # Ok(()) }
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::Error;

/// What to say when no server binaries exist.
const NO_BINARIES: &str = "no PostgreSQL server binaries found (looked for `initdb` and `postgres` \
     in RUNLEDGER_PG_BINDIR, PATH, `pg_config --bindir` and /usr/lib/postgresql/*/bin); install \
     them (Debian/Ubuntu: `apt-get install postgresql`) or set DATABASE_URL to use an existing \
     server";

/// Options for an embedded cluster.
#[derive(Debug, Clone)]
#[must_use = "call `.start()` to start the server"]
pub struct EmbeddedBuilder {
    durable: bool,
    bindir: Option<PathBuf>,
    settings: Vec<(String, String)>,
}

impl EmbeddedBuilder {
    /// Keep `fsync` and `full_page_writes` on, as a production server would (for benchmarks).
    /// Off by default: a throwaway cluster need not survive a power cut of the machine, and tests
    /// run much faster without flushing. Commits are acknowledged only once written to the
    /// kernel either way, so a crash of the server itself loses nothing.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Use the server binaries in `dir` instead of searching for them.
    pub fn bindir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bindir = Some(dir.into());
        self
    }

    /// Sets a server setting (`-c name=value`).
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((name.into(), value.into()));
        self
    }

    /// Creates and starts the cluster.
    pub fn start(self) -> Result<EmbeddedPostgres, Error> {
        EmbeddedPostgres::start_with(self)
    }
}

/// A running throwaway PostgreSQL cluster, stopped and deleted on drop.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    root: PathBuf,
    bindir: PathBuf,
    port: u16,
    server: Option<Child>,
    guardian: Option<(Child, ChildStdin)>,
    run_as: Option<(u32, u32)>,
    durable: bool,
    settings: Vec<(String, String)>,
}

impl EmbeddedPostgres {
    /// Options for a new cluster.
    pub fn builder() -> EmbeddedBuilder {
        EmbeddedBuilder {
            durable: false,
            bindir: None,
            settings: Vec::new(),
        }
    }

    /// Starts a cluster with default options.
    pub fn start() -> Result<Self, Error> {
        Self::builder().start()
    }

    /// A connection URL for database `postgres`, as superuser `postgres`.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// A connection URL for database `name`.
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data directory, the socket and the server log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the server binaries in use.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The process id of the server (the postmaster).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    fn start_with(options: EmbeddedBuilder) -> Result<Self, Error> {
        let bindir = match options.bindir {
            Some(dir) => dir,
            None => find_bindir().ok_or_else(|| Error::Embedded(NO_BINARIES.into()))?,
        };
        for tool in ["initdb", "postgres"] {
            if !bindir.join(tool).is_file() {
                return Err(Error::Embedded(format!(
                    "`{}` does not exist; {NO_BINARIES}",
                    bindir.join(tool).display()
                )));
            }
        }
        let run_as = if running_as_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let root = std::env::temp_dir().join(format!(
            "runledger-pg-{}-{:08x}",
            std::process::id(),
            crate::runtime::random_u64() as u32
        ));
        std::fs::create_dir_all(&root).map_err(|e| io_error("create", &root, e))?;
        let mut pg = EmbeddedPostgres {
            root,
            bindir,
            port: 0,
            server: None,
            guardian: None,
            run_as,
            durable: options.durable,
            settings: options.settings,
        };
        // From here on, `pg` cleans up after itself if anything fails.
        pg.spawn_guardian()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pg.root, Some(uid), Some(gid))
                .map_err(|e| io_error("chown", &pg.root, e))?;
        }
        pg.initdb()?;
        pg.launch(None)?;
        Ok(pg)
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(&self.root);
        cmd.env("LC_ALL", "C");
        cmd
    }

    fn initdb(&self) -> Result<(), Error> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.root.join("data"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Embedded(format!("could not run initdb: {e}")))?;
        if !out.status.success() {
            return Err(Error::Embedded(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Starts the server on `port`, or on a free port (retrying if another process takes it
    /// first).
    fn launch(&mut self, port: Option<u16>) -> Result<(), Error> {
        let durable = self.durable;
        let settings = self.settings.clone();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = match port {
                Some(port) => port,
                None => free_port()?,
            };
            let log_path = self.root.join("server.log");
            let log =
                std::fs::File::create(&log_path).map_err(|e| io_error("create", &log_path, e))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))
                    .map_err(|e| io_error("chown", &log_path, e))?;
            }
            let mut cmd = self.command("postgres");
            cmd.arg("-D")
                .arg(self.root.join("data"))
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&self.root)
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "max_connections=300"])
                .args(["-c", "shared_buffers=128MB"])
                .args(["-c", "logging_collector=off"]);
            if !durable {
                // Commits still reach the kernel before they are acknowledged, so a crash of
                // the server (not of the machine) loses nothing: restart tests stay honest.
                cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
            }
            for (name, value) in &settings {
                cmd.arg("-c").arg(format!("{name}={value}"));
            }
            let stderr = log
                .try_clone()
                .map_err(|e| io_error("open", &log_path, e))?;
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(stderr)
                .spawn()
                .map_err(|e| Error::Embedded(format!("could not start postgres: {e}")))?;
            self.server = Some(child);
            self.port = port;
            self.tell_guardian()?;
            match self.wait_ready(&log_path) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last_error = e;
                    self.stop_server();
                }
            }
        }
        Err(Error::Embedded(format!(
            "the server did not start: {last_error}"
        )))
    }

    fn wait_ready(&mut self, log_path: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let socket = self.root.join(format!(".s.PGSQL.{}", self.port));
        loop {
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                return Err(format!(
                    "postgres exited with {status}: {}",
                    tail(&log, 2000)
                ));
            }
            if socket.exists()
                && TcpStream::connect_timeout(
                    &(Ipv4Addr::LOCALHOST, self.port).into(),
                    Duration::from_millis(200),
                )
                .is_ok()
                && self.log_says_ready(log_path)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                return Err(format!("not ready after 30 s: {}", tail(&log, 2000)));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_says_ready(&self, log_path: &Path) -> bool {
        std::fs::read_to_string(log_path)
            .map(|log| log.contains("ready to accept connections"))
            .unwrap_or(false)
    }

    /// Starts the guardian: `sh` that blocks reading a pipe from this process; when the pipe
    /// closes it stops the server whose pid it was last told and deletes the directory.
    fn spawn_guardian(&mut self) -> Result<(), Error> {
        let script = r#"
            pid=""
            while read -r line; do pid="$line"; done
            if [ -n "$pid" ]; then
                kill -QUIT "$pid" 2>/dev/null
                i=0
                while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
                kill -KILL "$pid" 2>/dev/null
            fi
            rm -rf "$1"
        "#;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("runledger-pg-guardian")
            .arg(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C aimed at the parent must not kill the guardian
            // before the parent has exited.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Embedded(format!("could not start the cleanup guardian: {e}")))?;
        let stdin = child.stdin.take().expect("piped stdin");
        self.guardian = Some((child, stdin));
        Ok(())
    }

    fn tell_guardian(&mut self) -> Result<(), Error> {
        let pid = self.pid();
        if let (Some((_, stdin)), Some(pid)) = (self.guardian.as_mut(), pid) {
            writeln!(stdin, "{pid}")
                .and_then(|()| stdin.flush())
                .map_err(|e| {
                    Error::Embedded(format!("could not reach the cleanup guardian: {e}"))
                })?;
        }
        Ok(())
    }

    /// Stops the server (immediate shutdown) and waits for it to exit.
    fn stop_server(&mut self) {
        if let Some(mut server) = self.server.take() {
            let pid = server.id();
            let _ = Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("kill -QUIT {pid}"))
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match server.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    _ => {
                        let _ = server.kill();
                        let _ = server.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Stops the server at once (like a crash: `SIGQUIT`, no checkpoint) and starts it again on
    /// the same port and data. Open connections break; clients that reconnect find their data.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop_server();
        self.launch(Some(self.port))
    }

    /// Stops the server and deletes its directory now (dropping does the same).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.root);
        if let Some((mut guardian, stdin)) = self.guardian.take() {
            drop(stdin);
            let _ = guardian.wait();
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].trim()
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Embedded(format!("could not {what} {}: {e}", path.display()))
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::Embedded(format!("no free TCP port on 127.0.0.1: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Embedded(format!("no free TCP port on 127.0.0.1: {e}")))
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32), Error> {
    let mut passwd = String::new();
    std::fs::File::open("/etc/passwd")
        .and_then(|mut f| f.read_to_string(&mut passwd))
        .map_err(|e| Error::Embedded(format!("could not read /etc/passwd: {e}")))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4 && fields[0] == "postgres" {
                Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
            } else {
                None
            }
        })
        .ok_or_else(|| {
            Error::Embedded(
                "this process runs as root and PostgreSQL refuses to; there is no `postgres` \
                 system user to run it as (installing the `postgresql` package creates one), or \
                 set DATABASE_URL"
                    .into(),
            )
        })
}

/// Finds a directory holding `initdb` and `postgres`.
pub(crate) fn find_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("RUNLEDGER_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d))
    {
        return Some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&dir) {
            return Some(dir);
        }
    }
    // Debian and Ubuntu: /usr/lib/postgresql/<major>/bin, newest first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    if let Some((_, dir)) = versions.into_iter().next() {
        return Some(dir);
    }
    let fallback = PathBuf::from("/usr/local/pgsql/bin");
    has_tools(&fallback).then_some(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_give_one_clear_error() {
        let err = EmbeddedPostgres::builder()
            .bindir("/nonexistent/postgresql/bin")
            .start()
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("/nonexistent/postgresql/bin/initdb` does not exist"),
            "{message}"
        );
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn starts_and_cleans_up() {
        let pg = EmbeddedPostgres::start().expect("server binaries are installed");
        let root = pg.root().to_owned();
        let pid = pg.pid().expect("running");
        assert!(root.join("data").join("PG_VERSION").is_file());
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, pg.port())).is_ok());
        pg.stop();
        assert!(!root.exists(), "directory removed");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "server stopped"
        );
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
