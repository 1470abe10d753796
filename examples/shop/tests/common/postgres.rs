//! A real PostgreSQL (Debian's `postgresql` package) in a temporary
//! directory, on a loopback port, with a password: started, stopped and
//! started again by the test. As root (CI), the server runs as the
//! `postgres` user the package creates, since PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A database server of the test's own.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    pub password: String,
}

/// The newest installed server's `bin` directory.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists() && p.join("pg_ctl").exists());
    found.sort();
    found.pop().expect(
        "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): \
         scripts/install-test-deps installs Debian's postgresql",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A free loopback port (bound, then released for the server).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Postgres {
    /// A new cluster, started, with user `postgres` and a random password.
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("shop-pg-")
            .tempdir()
            .unwrap();
        let password = format!(
            "pw-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        std::fs::write(dir.path().join("pwfile"), &password).unwrap();
        let pg = Postgres {
            bin: bin_dir(),
            port: free_port(),
            password,
            dir,
        };
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .unwrap();
            assert!(
                st.success(),
                "chown to postgres failed (is Debian's postgresql installed?)"
            );
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                &pg.dir.path().join("pwfile").display().to_string(),
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs one of the server's programs (as `postgres` when root).
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let out = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        } else {
            Command::new(&exe)
                .args(args)
                .current_dir(self.dir.path())
                .output()
        }
        .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.dir.path().join("server.log").display().to_string(),
                "-o",
                &opts,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (connections cut), waiting until it is down.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// The DSN (with the password: only ever in an environment variable).
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// Where the server lives.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", &self.data(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
