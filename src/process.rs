//! Child processes, once for everything we run: finding an executable, spawning a child in its own process
//! group tied to our life (from a thread that lasts), the user's umask for Claude, signalling a process group and
//! the supervisor's stop ladder.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::process::{Child, Command};

/// Finds an executable as the shell would: a path with a slash as given, a bare name on PATH.
pub fn find_executable(bin: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(bin))
        .find(|p| executable(p))
}

/// Spawns `cmd` in a process group of its own, so a Ctrl-C in the terminal reaches only us, and on Linux with
/// `PR_SET_PDEATHSIG`, so it dies with us even if we are killed. Call it from a thread that lives as long as the
/// process (the death signal follows the thread that forked), or use [`spawn_from_lasting_thread`].
pub fn spawn(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.process_group(0).kill_on_drop(true);
    #[cfg(target_os = "linux")]
    die_with_parent(cmd);
    cmd.spawn()
}

/// Asks the kernel to send the child SIGTERM when the thread that forks it dies (Linux). A parent that died
/// between the fork and the request is caught by comparing the child's parent with ours: the child then fails to
/// start instead of running on unowned.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and makes two system calls (prctl, getppid), both
    // async-signal-safe; it allocates nothing (the error is a raw OS error) and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)?;
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// The umask the user had when we started (we run with 0077 so that our own files stay private), for the
/// children that work on the user's files; `up` hands it to `serve` (`--child-umask`).
static USER_UMASK: OnceLock<u32> = OnceLock::new();

/// Everything we create from here on (database, its WAL, logs, config) is readable by the user alone. The umask
/// the user had is kept for Claude (see [`with_user_umask`]).
pub fn private_umask() {
    let before = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    remember_user_umask(before.bits() as u32);
}

/// Records the umask the user had; the first call wins (a later one would see our own 0077).
pub fn remember_user_umask(mask: u32) {
    let _ = USER_UMASK.set(mask & 0o777);
}

/// The umask the user had, if recorded.
pub fn user_umask() -> Option<u32> {
    USER_UMASK.get().copied()
}

/// Gives the child the umask the user had instead of ours, so that the files Claude creates get the user's usual
/// modes.
#[allow(unsafe_code)]
pub fn with_user_umask(cmd: &mut Command) {
    let Some(mask) = user_umask() else { return };
    let mode = nix::sys::stat::Mode::from_bits_truncate(mask as nix::libc::mode_t);
    // SAFETY: the closure runs between fork and exec and makes one system call (umask), which is
    // async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::stat::umask(mode);
            Ok(())
        });
    }
}

/// A spawn request for the lasting thread, with the runtime the child is to be registered with and where to send
/// the result.
type Job = (
    Command,
    tokio::runtime::Handle,
    std::sync::mpsc::SyncSender<std::io::Result<Child>>,
);

/// The thread that forks children whose death signal must last: it never exits, so `PR_SET_PDEATHSIG` fires only
/// when the whole process dies. A tokio worker forking directly would do as long as it lives, but which thread
/// runs a task is not ours to choose, and tokio's blocking threads exit when idle.
static SPAWNER: OnceLock<Option<Mutex<std::sync::mpsc::Sender<Job>>>> = OnceLock::new();

/// Spawns `cmd` (with whatever pre-exec hooks it has) from the thread that `SPAWNER` feeds and returns the child,
/// registered with the current tokio runtime. The fork takes as long as it would here; only the thread differs. Must
/// be called within a tokio runtime.
pub fn spawn_from_lasting_thread(mut cmd: Command) -> std::io::Result<Child> {
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("spawner".into())
            .spawn(move || {
                for (mut cmd, runtime, reply) in rx {
                    let _entered = runtime.enter();
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let Some(spawner) = spawner else {
        // No thread could be started: fork here rather than not at all.
        return cmd.spawn();
    };
    let (reply, result) = std::sync::mpsc::sync_channel(1);
    let job = (cmd, tokio::runtime::Handle::current(), reply);
    let sent = spawner.lock().unwrap_or_else(|e| e.into_inner()).send(job);
    match sent {
        Ok(()) => result
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread is gone"))),
        Err(std::sync::mpsc::SendError((mut cmd, _, _))) => cmd.spawn(),
    }
}

/// Sends `signal` to the child's process group (it leads its own), if it still runs.
pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    if let Some(pid) = child.id() {
        signal_group(pid, signal);
    }
}

/// Sends `signal` to a process group, then SIGCONT: a stopped process (SIGSTOP, a debugger, a terminal's
/// Ctrl-Z) acts on nothing but SIGKILL until it is continued, and would wait out every rung of a ladder. A running
/// one ignores SIGCONT.
pub fn signal_group(pgid: u32, signal: nix::sys::signal::Signal) {
    use nix::sys::signal::{Signal, killpg};
    if pgid <= 1 {
        return;
    }
    let group = nix::unistd::Pid::from_raw(pgid as i32);
    let _ = killpg(group, signal);
    if signal != Signal::SIGKILL && signal != Signal::SIGCONT {
        let _ = killpg(group, Signal::SIGCONT);
    }
}

/// The one stop ladder: each signal of `rungs` in turn to the process group `pgid` (with SIGCONT, see
/// [`signal_group`]), each followed by up to `grace` for `exited` to resolve, then SIGKILL and the wait. `claude`
/// climbs SIGINT, SIGTERM; a supervised child SIGTERM alone.
pub async fn ladder<T>(
    pgid: u32,
    rungs: &[nix::sys::signal::Signal],
    grace: Duration,
    exited: impl std::future::Future<Output = T>,
) -> T {
    let mut exited = std::pin::pin!(exited);
    for &rung in rungs {
        signal_group(pgid, rung);
        if let Ok(done) = tokio::time::timeout(grace, exited.as_mut()).await {
            return done;
        }
    }
    signal_group(pgid, nix::sys::signal::Signal::SIGKILL);
    exited.await
}

/// The stop ladder for a supervised child: SIGTERM, up to `grace` for it to exit, then SIGKILL.
pub async fn stop(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    use nix::sys::signal::Signal;
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let Some(pid) = child.id() else {
        return child.wait().await.ok();
    };
    ladder(pid, &[Signal::SIGTERM], grace, child.wait())
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The death signal follows the thread that forked: a child asked for by a thread that then exits must live
    /// on while this process does.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_outlives_the_thread_that_asked_for_it() {
        let alive = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, r)| !r.starts_with(" Z"))
            })
        };
        let (pid, child) = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _entered = rt.enter();
            let mut cmd = Command::new("sleep");
            cmd.arg("30").process_group(0);
            die_with_parent(&mut cmd);
            let child = spawn_from_lasting_thread(cmd).unwrap();
            (child.id().unwrap(), child)
        })
        .join()
        .unwrap();
        // The asking thread is gone; a death signal tied to it would have arrived by now or within moments.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            assert!(
                alive(pid),
                "the child died with the thread that asked for it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        drop(child);
    }
}
