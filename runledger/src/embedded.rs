//! A private, throwaway PostgreSQL for examples, tests and benchmarks.
//!
//! [`EmbeddedPostgres::start`] runs `initdb` into a fresh temporary directory, starts the server
//! with its unix socket in that directory, and removes everything when dropped. The server
//! binaries are found on the machine (`RUNLEDGER_PG_BINDIR`, `PATH`, `pg_config --bindir`,
//! `/usr/lib/postgresql/*/bin`, `/usr/local/pgsql/bin`). PostgreSQL refuses to run as root: when
//! the process is root, the server runs as the `postgres` system user.
//!
//! Cleanup does not depend on `Drop` alone: a small guardian process watches a pipe from this
//! process and, when the pipe closes (normal exit, panic, `SIGKILL`), stops the server and
//! deletes the directory. A cluster kept in a `static` (as the test support does) is therefore
//! cleaned up too.
//!
//! ```no_run
//! # fn demo() -> Result<(), runledger::Error> {
//! let pg = runledger::embedded::EmbeddedPostgres::start()?;
//! let url = pg.url(); // carries the password: keep it out of logs
//! # drop(url);
//! # Ok(()) }
//! ```
//!
//! See [`EmbeddedPostgres`] for who may connect and what is on disk.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
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

/// The only role of the cluster, a superuser.
const USER: &str = "postgres";

/// Bytes of randomness in the password (hex-encoded, so twice as many characters).
const PASSWORD_BYTES: usize = 24;

/// The longest unix socket path the kernel accepts, without the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// How a server is stopped before a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopMode {
    /// `SIGINT`: sessions are ended, a shutdown checkpoint is written (`pg_ctl -m fast`).
    Fast,
    /// `SIGQUIT`: the server exits at once, recovery replays the WAL on the next start
    /// (`pg_ctl -m immediate`, much like a crash).
    Immediate,
}

/// Options for an embedded cluster.
#[derive(Debug, Clone)]
#[must_use = "call `.start()` to start the server"]
pub struct EmbeddedBuilder {
    durable: bool,
    tcp: bool,
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

    /// Also listen on TCP, on a free port of 127.0.0.1 ([`EmbeddedPostgres::tcp_port`]), for
    /// clients that cannot use a unix socket. Off by default: the server then has no TCP
    /// listener at all. TCP connections need the password like socket connections do; but any
    /// local user can reach the port and try.
    pub fn tcp(mut self, enabled: bool) -> Self {
        self.tcp = enabled;
        self
    }

    /// Use the server binaries in `dir` instead of searching for them.
    pub fn bindir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bindir = Some(dir.into());
        self
    }

    /// Sets a server setting (`-c name=value`). Applied after runledger's own settings, so it
    /// can override them, including the ones the security model of [`EmbeddedPostgres`] rests
    /// on.
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
///
/// # Security model
///
/// The cluster is meant for development and tests on one machine, and only the process that
/// started it may use it:
///
/// - **Who can connect.** The superuser `postgres` is the only role, and it has a random password
///   (24 bytes from `/dev/urandom`, hex-encoded) made for this instance. Every connection, over
///   the socket or TCP, must prove it with SCRAM-SHA-256; there is no `trust` authentication.
///   The password is never written to a lasting file or passed on a command line: `initdb` reads
///   it from a file of mode 0600 in the private directory, deleted as soon as `initdb` returns.
///   Afterwards it lives only in this process's memory and in the URLs of
///   [`url`](Self::url) and [`database_url`](Self::database_url) (and
///   [`password`](Self::password)); the `Debug` output leaves it out.
/// - **How.** Through the unix socket `.s.PGSQL.<port>` in the instance's directory, which the
///   URL names with its `host` query parameter:
///   `postgres://postgres:<password>@localhost:<port>/<database>?host=<directory>`. The server
///   does not listen on TCP at all (`listen_addresses=''`) unless
///   [`EmbeddedBuilder::tcp`] asks for it; then it listens on 127.0.0.1 only, on a free port
///   ([`tcp_port`](Self::tcp_port)), and still demands the password.
/// - **What is on disk.** One directory, `runledger-pg-<pid>-<random>` in the temporary
///   directory, created with mode 0700 (owned by the `postgres` system user when this process is
///   root; root can still enter it). It holds the data directory (`data`, mode 0700 as `initdb`
///   makes it), the server log (`server.log`, mode 0600) and the socket (mode 0700). Other local
///   users cannot list the directory, read the log or the data, or reach the socket. The OS user
///   the server runs as (this process's user, or `postgres` under root) owns all of it, as it
///   owns its other files; a process of that user could read the data files directly, but it
///   still needs the password to connect.
///
/// Settings given with [`EmbeddedBuilder::setting`] are applied last and can override any of
/// this (for example `listen_addresses`); the cluster's protection is then the caller's choice.
pub struct EmbeddedPostgres {
    root: PathBuf,
    bindir: PathBuf,
    port: u16,
    tcp: bool,
    password: String,
    server: Option<Child>,
    guardian: Option<(Child, ChildStdin)>,
    run_as: Option<(u32, u32)>,
    durable: bool,
    settings: Vec<(String, String)>,
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("root", &self.root)
            .field("bindir", &self.bindir)
            .field("port", &self.port)
            .field("tcp", &self.tcp)
            .field("password", &"<redacted>")
            .field("pid", &self.pid())
            .field("run_as", &self.run_as)
            .field("durable", &self.durable)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPostgres {
    /// Options for a new cluster.
    pub fn builder() -> EmbeddedBuilder {
        EmbeddedBuilder {
            durable: false,
            tcp: false,
            bindir: None,
            settings: Vec::new(),
        }
    }

    /// Starts a cluster with default options.
    pub fn start() -> Result<Self, Error> {
        Self::builder().start()
    }

    /// A connection URL for database `postgres`, as superuser `postgres`; see
    /// [`database_url`](Self::database_url).
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// A connection URL for database `name`, as superuser `postgres`, over the unix socket:
    /// `postgres://postgres:<password>@localhost:<port>/<name>?host=<socket dir>`. The `host`
    /// query parameter names the socket's directory and the port its file
    /// (`.s.PGSQL.<port>`); sqlx and libpq both read it so. The URL holds the password: keep it
    /// out of logs.
    pub fn database_url(&self, name: &str) -> String {
        format!(
            "postgres://{USER}:{}@localhost:{}/{}?host={}",
            percent_encode(self.password.as_bytes(), b""),
            self.port,
            percent_encode(name.as_bytes(), b""),
            percent_encode(self.root.as_os_str().as_bytes(), b"/"),
        )
    }

    /// The server's port number. It names the socket file (`.s.PGSQL.<port>` in
    /// [`socket_dir`](Self::socket_dir)); it is also the TCP port on 127.0.0.1 when TCP is on
    /// ([`tcp_port`](Self::tcp_port)), and nothing listens on it otherwise.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TCP port on 127.0.0.1, if [`EmbeddedBuilder::tcp`] turned TCP on.
    pub fn tcp_port(&self) -> Option<u16> {
        self.tcp.then_some(self.port)
    }

    /// The password of the superuser `postgres` (also part of [`url`](Self::url)), for clients
    /// that take it separately, such as `psql` with `PGPASSWORD`.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of the unix socket (the same as [`root`](Self::root)).
    pub fn socket_dir(&self) -> &Path {
        &self.root
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
        let root = create_private_dir()?;
        let mut pg = EmbeddedPostgres {
            root,
            bindir,
            port: 0,
            tcp: options.tcp,
            password: String::new(),
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
        pg.password = random_hex(PASSWORD_BYTES)?;
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

    /// Creates the cluster with the superuser's password read from a file that exists only
    /// while `initdb` runs.
    fn initdb(&self) -> Result<(), Error> {
        let pwfile = self.root.join("pwfile");
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pwfile)
            .and_then(|mut f| writeln!(f, "{}", self.password))
            .map_err(|e| io_error("write", &pwfile, e));
        let out = written
            .and_then(|()| match self.run_as {
                Some((uid, gid)) => std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                    .map_err(|e| io_error("chown", &pwfile, e)),
                None => Ok(()),
            })
            .and_then(|()| {
                self.command("initdb")
                    .arg("-D")
                    .arg(self.root.join("data"))
                    .arg(format!("--pwfile={}", pwfile.display()))
                    .args([
                        "-U",
                        USER,
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--no-sync",
                    ])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| Error::Embedded(format!("could not run initdb: {e}")))
            });
        let removed = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(Error::Embedded(format!(
                "initdb failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        removed.map_err(|e| io_error("remove", &pwfile, e))
    }

    /// Starts the server on `port`, or on a free port (retrying if another process takes it
    /// first).
    fn launch(&mut self, port: Option<u16>) -> Result<(), Error> {
        let durable = self.durable;
        let settings = self.settings.clone();
        let listen = if self.tcp { "127.0.0.1" } else { "" };
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = match port {
                Some(port) => port,
                None => free_port()?,
            };
            let log_path = self.root.join("server.log");
            let log = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&log_path)
                .map_err(|e| io_error("create", &log_path, e))?;
            // `mode` applies only when the file is created; make sure of it either way.
            log.set_permissions(Permissions::from_mode(0o600))
                .map_err(|e| io_error("chmod", &log_path, e))?;
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
                .arg("-c")
                .arg(format!("listen_addresses={listen}"))
                .args(["-c", "unix_socket_permissions=0700"])
                .args(["-c", "password_encryption=scram-sha-256"])
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
                    self.stop_server(StopMode::Immediate);
                }
            }
        }
        Err(Error::Embedded(format!(
            "the server did not start: {last_error}"
        )))
    }

    /// Waits until the log says the server accepts connections and its socket (and its TCP
    /// port, if on) takes one.
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
            if self.log_says_ready(log_path)
                && UnixStream::connect(&socket).is_ok()
                && (!self.tcp
                    || TcpStream::connect_timeout(
                        &(Ipv4Addr::LOCALHOST, self.port).into(),
                        Duration::from_millis(200),
                    )
                    .is_ok())
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

    /// Stops the server and waits for it to exit. A fast shutdown that takes over a minute is
    /// turned into an immediate one; an immediate one that takes over 10 s is killed.
    fn stop_server(&mut self, mode: StopMode) {
        if let Some(mut server) = self.server.take() {
            let pid = server.id();
            let mut mode = mode;
            loop {
                let (signal, patience) = match mode {
                    StopMode::Fast => ("INT", Duration::from_secs(60)),
                    StopMode::Immediate => ("QUIT", Duration::from_secs(10)),
                };
                let _ = Command::new("/bin/sh")
                    .arg("-c")
                    .arg(format!("kill -{signal} {pid}"))
                    .status();
                let deadline = Instant::now() + patience;
                let exited = loop {
                    match server.try_wait() {
                        Ok(Some(_)) => break true,
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        _ => break false,
                    }
                };
                match (exited, mode) {
                    (true, _) => return,
                    (false, StopMode::Fast) => mode = StopMode::Immediate,
                    (false, StopMode::Immediate) => {
                        let _ = server.kill();
                        let _ = server.wait();
                        return;
                    }
                }
            }
        }
    }

    /// Stops the server at once (like a crash: `SIGQUIT`, no checkpoint) and starts it again on
    /// the same socket, port and data; the server replays its WAL on startup. Open connections
    /// break; clients that reconnect find every committed transaction.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.restart_with(StopMode::Immediate)
    }

    /// Restarts the server the way `pg_ctl restart -m fast` does: a fast shutdown (`SIGINT`:
    /// sessions are ended and their open transactions rolled back, then a shutdown checkpoint is
    /// written), a wait for the server to exit, and a start on the same socket, port and data.
    /// Open connections break; clients that reconnect find every committed transaction. A
    /// shutdown that takes over a minute is completed as an immediate one.
    pub fn restart_fast(&mut self) -> Result<(), Error> {
        self.restart_with(StopMode::Fast)
    }

    fn restart_with(&mut self, mode: StopMode) -> Result<(), Error> {
        self.stop_server(mode);
        self.launch(Some(self.port))
    }

    /// Stops the server and deletes its directory now (dropping does the same).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop_server(StopMode::Immediate);
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

/// `bytes` random bytes from `/dev/urandom`, hex-encoded.
fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0_u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::Embedded(format!("could not read /dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// `bytes` with every byte outside the URL's unreserved characters and `keep` percent-encoded.
fn percent_encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates a new directory of mode 0700 with an unpredictable name in the temporary directory
/// (or in `/tmp` if the socket's path would be too long there). It must not exist yet: a name
/// someone else took is never reused.
fn create_private_dir() -> Result<PathBuf, Error> {
    let mut base = std::env::temp_dir();
    let mut last_error = None;
    for _ in 0..5 {
        let name = format!("runledger-pg-{}-{}", std::process::id(), random_hex(8)?);
        let socket_len = base.join(&name).join(".s.PGSQL.65535").as_os_str().len();
        if socket_len > MAX_SOCKET_PATH && base != Path::new("/tmp") {
            base = PathBuf::from("/tmp");
        }
        let root = base.join(name);
        match DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => {
                // The umask may have narrowed the mode, never widened it; say it exactly.
                std::fs::set_permissions(&root, Permissions::from_mode(0o700))
                    .map_err(|e| io_error("chmod", &root, e))?;
                return Ok(root);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(io_error("create", &root, e)),
        }
    }
    Err(Error::Embedded(format!(
        "could not create a private directory in {}: {}",
        base.display(),
        last_error.map_or_else(String::new, |e| e.to_string())
    )))
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

/// The uid and gid of the system user `name`, from `/etc/passwd`.
fn system_user(name: &str) -> Result<Option<(u32, u32)>, Error> {
    let mut passwd = String::new();
    std::fs::File::open("/etc/passwd")
        .and_then(|mut f| f.read_to_string(&mut passwd))
        .map_err(|e| Error::Embedded(format!("could not read /etc/passwd: {e}")))?;
    Ok(passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() >= 4 && fields[0] == name {
            Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
        } else {
            None
        }
    }))
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32), Error> {
    system_user("postgres")?.ok_or_else(|| {
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
    use std::collections::HashSet;

    use sqlx::{Connection, PgConnection};

    use super::*;

    /// Runs `f` to completion on a small tokio runtime.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// Connects to `url` and runs `sql`, which returns one text value.
    fn query_text(url: &str, sql: &'static str) -> Result<String, sqlx::Error> {
        block_on(async {
            let mut conn = PgConnection::connect(url).await?;
            let value: String = sqlx::query_scalar(sql).fetch_one(&mut conn).await?;
            conn.close().await?;
            Ok(value)
        })
    }

    /// Connects to `url` and runs `sql` (statements without results).
    fn execute(url: &str, sql: &'static str) -> Result<(), sqlx::Error> {
        block_on(async {
            let mut conn = PgConnection::connect(url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await?;
            conn.close().await
        })
    }

    /// A URL over TCP to `pg`, with `password` (none if empty).
    fn tcp_url(pg: &EmbeddedPostgres, password: &str) -> String {
        let port = pg.tcp_port().expect("TCP is on");
        if password.is_empty() {
            format!("postgres://postgres@127.0.0.1:{port}/postgres")
        } else {
            format!("postgres://postgres:{password}@127.0.0.1:{port}/postgres")
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .mode()
            & 0o777
    }

    /// The TCP sockets the process `pid` listens on, as `(address, port)` in hex as
    /// `/proc/net/tcp*` writes them.
    fn tcp_listeners(pid: u32) -> Vec<String> {
        let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("the server's file descriptors are readable")
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .filter_map(|target| {
                let target = target.to_string_lossy().into_owned();
                Some(
                    target
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .to_owned(),
                )
            })
            .collect();
        assert!(
            !inodes.is_empty(),
            "the server has sockets (its unix socket)"
        );
        ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| {
                table
                    .lines()
                    .skip(1)
                    .filter_map(|line| {
                        let fields: Vec<&str> = line.split_whitespace().collect();
                        // local_address, state 0A (LISTEN), inode.
                        (fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]))
                            .then(|| fields[1].to_owned())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

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
        let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
        assert!(UnixStream::connect(&socket).is_ok());
        pg.stop();
        assert!(!root.exists(), "directory removed");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "server stopped"
        );
    }

    #[test]
    fn url_admits_the_password_only() {
        let pg = EmbeddedPostgres::start().unwrap();
        let url = pg.url();
        assert_eq!(
            url,
            format!(
                "postgres://postgres:{}@localhost:{}/postgres?host={}",
                pg.password(),
                pg.port(),
                pg.socket_dir().display()
            )
        );
        assert_eq!(pg.password().len(), 2 * PASSWORD_BYTES);
        assert!(pg.password().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!format!("{pg:?}").contains(pg.password()), "Debug hides it");
        assert_eq!(query_text(&url, "SELECT '1'").unwrap(), "1");
        assert_eq!(
            query_text(
                &pg.database_url("template1"),
                "SELECT current_database()::text"
            )
            .unwrap(),
            "template1"
        );

        let wrong = url.replace(pg.password(), &"0".repeat(2 * PASSWORD_BYTES));
        let err = query_text(&wrong, "SELECT '1'").unwrap_err().to_string();
        assert!(err.contains("password authentication failed"), "{err}");
        let none = url.replace(&format!(":{}@", pg.password()), "@");
        assert!(!none.contains(pg.password()));
        assert!(query_text(&none, "SELECT '1'").is_err());
    }

    #[test]
    fn files_are_private() {
        let pg = EmbeddedPostgres::start().unwrap();
        let root = pg.root();
        assert_eq!(mode(root), 0o700, "instance directory");
        assert_eq!(mode(&root.join("data")), 0o700, "data directory");
        assert_eq!(mode(&root.join("server.log")), 0o600, "server log");
        let socket = root.join(format!(".s.PGSQL.{}", pg.port()));
        assert_eq!(mode(&socket), 0o700, "socket");
        assert!(!root.join("pwfile").exists(), "password file removed");
        if running_as_root() {
            let (uid, _) = postgres_user().unwrap();
            assert_eq!(std::fs::metadata(root).unwrap().uid(), uid);
        }
        let log = std::fs::read_to_string(root.join("server.log")).unwrap();
        assert!(
            !log.contains(pg.password()),
            "the log does not hold the password"
        );
    }

    #[test]
    fn tcp_is_off_unless_asked() {
        let pg = EmbeddedPostgres::start().unwrap();
        assert_eq!(pg.tcp_port(), None);
        assert_eq!(query_text(&pg.url(), "SHOW listen_addresses").unwrap(), "");
        assert_eq!(tcp_listeners(pg.pid().unwrap()), Vec::<String>::new());
        assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, pg.port())).is_err());
        drop(pg);

        let pg = EmbeddedPostgres::builder().tcp(true).start().unwrap();
        assert_eq!(pg.tcp_port(), Some(pg.port()));
        assert_eq!(
            query_text(&pg.url(), "SHOW listen_addresses").unwrap(),
            "127.0.0.1"
        );
        // 127.0.0.1 only: 0100007F:<port> in /proc/net/tcp.
        assert_eq!(
            tcp_listeners(pg.pid().unwrap()),
            vec![format!("0100007F:{:04X}", pg.port())]
        );
        assert_eq!(
            query_text(
                &tcp_url(&pg, pg.password()),
                "SELECT inet_server_addr()::text"
            )
            .unwrap(),
            "127.0.0.1/32"
        );
        let err = query_text(&tcp_url(&pg, &"0".repeat(48)), "SELECT '1'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("password authentication failed"), "{err}");
        assert!(query_text(&tcp_url(&pg, ""), "SELECT '1'").is_err());
    }

    #[test]
    fn restarts_keep_committed_data() {
        let mut pg = EmbeddedPostgres::start().unwrap();
        let url = pg.url();
        execute(
            &url,
            "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before');",
        )
        .unwrap();
        let log = pg.root().join("server.log");

        let pid = pg.pid();
        pg.restart_fast().unwrap();
        assert_ne!(pg.pid(), pid, "a new postmaster");
        assert_eq!(pg.url(), url, "same socket, port and password");
        let started = std::fs::read_to_string(&log).unwrap();
        assert!(
            started.contains("database system was shut down at"),
            "a clean shutdown before the start: {started}"
        );
        assert!(!started.contains("not properly shut down"), "{started}");
        assert_eq!(query_text(&url, "SELECT v FROM kept").unwrap(), "before");

        execute(&url, "INSERT INTO kept VALUES ('after')").unwrap();
        pg.restart().unwrap();
        let started = std::fs::read_to_string(&log).unwrap();
        assert!(
            started.contains("not properly shut down"),
            "recovery after an immediate shutdown: {started}"
        );
        assert_eq!(
            query_text(&url, "SELECT string_agg(v, ',' ORDER BY v) FROM kept").unwrap(),
            "after,before"
        );
    }

    /// What a command run as another user printed, and whether it succeeded.
    struct Outcome {
        success: bool,
        output: String,
    }

    /// Runs `program` as `uid:gid` with a clean environment (no password, no password file).
    fn run_as(uid: u32, gid: u32, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let out = Command::new(program)
            .args(args)
            .uid(uid)
            .gid(gid)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("PGCONNECT_TIMEOUT", "3")
            .env("PGPASSFILE", "/dev/null")
            .envs(env.iter().copied())
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
        Outcome {
            success: out.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    fn find_psql(pg: &EmbeddedPostgres) -> Option<PathBuf> {
        let own = pg.bindir().join("psql");
        if own.is_file() {
            return Some(own);
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join("psql"))
            .find(|p| p.is_file())
    }

    #[test]
    fn other_local_users_cannot_connect() {
        if !running_as_root() {
            eprintln!(
                "skipped: acting as another local user (`nobody`) needs root, and this test \
                 runs as an ordinary user"
            );
            return;
        }
        let (uid, gid) = system_user("nobody")
            .unwrap()
            .expect("a `nobody` user in /etc/passwd");
        for tcp in [false, true] {
            let pg = EmbeddedPostgres::builder().tcp(tcp).start().unwrap();
            let dir = pg.socket_dir().to_str().unwrap().to_owned();
            let port = pg.port().to_string();

            let ls = run_as(uid, gid, Path::new("/bin/ls"), &[&dir], &[]);
            assert!(!ls.success, "nobody listed {dir}: {}", ls.output);
            assert!(ls.output.contains("Permission denied"), "{}", ls.output);
            let enter = run_as(
                uid,
                gid,
                Path::new("/bin/sh"),
                &["-c", "test -x \"$0\"", &dir],
                &[],
            );
            assert!(!enter.success, "nobody may enter {dir}");

            if let Some(psql) = find_psql(&pg) {
                let args = |host: &'static str| {
                    let host = if host.is_empty() {
                        dir.clone()
                    } else {
                        host.into()
                    };
                    vec![
                        "-w".to_owned(),
                        "-X".into(),
                        "-h".into(),
                        host,
                        "-p".into(),
                        port.clone(),
                        "-U".into(),
                        "postgres".into(),
                        "-d".into(),
                        "postgres".into(),
                        "-Atc".into(),
                        "select 1".into(),
                    ]
                };
                let psql_as_nobody = |host: &'static str, env: &[(&str, &str)]| {
                    let args = args(host);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    run_as(uid, gid, &psql, &args, env)
                };
                // The socket: the directory keeps nobody out, password or not.
                let socket = psql_as_nobody("", &[]);
                assert!(!socket.success, "nobody connected over the socket");
                assert!(
                    socket.output.contains("Permission denied"),
                    "{}",
                    socket.output
                );
                let socket = psql_as_nobody("", &[("PGPASSWORD", pg.password())]);
                assert!(!socket.success, "nobody connected over the socket");
                // TCP: refused when off, a password demanded when on.
                let over_tcp = psql_as_nobody("127.0.0.1", &[]);
                assert!(!over_tcp.success, "nobody connected over TCP");
                let expected = if tcp {
                    "no password supplied"
                } else {
                    "Connection refused"
                };
                assert!(over_tcp.output.contains(expected), "{}", over_tcp.output);
                if tcp {
                    let guessed = psql_as_nobody("127.0.0.1", &[("PGPASSWORD", "postgres")]);
                    assert!(!guessed.success, "nobody connected with a guessed password");
                    assert!(
                        guessed.output.contains("password authentication failed"),
                        "{}",
                        guessed.output
                    );
                    // With the password, nobody gets in: the refusals above were the server's.
                    let known = psql_as_nobody("127.0.0.1", &[("PGPASSWORD", pg.password())]);
                    assert!(known.success, "{}", known.output);
                    assert_eq!(known.output.trim(), "1");
                }
            } else {
                eprintln!("psql is not installed: checking TCP without it");
                if tcp {
                    assert!(query_text(&tcp_url(&pg, ""), "SELECT '1'").is_err());
                } else {
                    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, pg.port())).is_err());
                }
            }
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode(b"ab-._~09", b""), "ab-._~09");
        assert_eq!(percent_encode(b"/tmp/a b+c", b"/"), "/tmp/a%20b%2Bc");
        assert_eq!(percent_encode(b"a/b", b""), "a%2Fb");
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
