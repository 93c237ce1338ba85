//! `tunebridge run --nproc-per-node N`: spawn one process per local rank (this same binary with
//! the same arguments, told its rank through torchrun's variables) and supervise them. Global
//! rank 0 keeps the terminal (its progress bar); every other rank writes `rank-<r>.log` in the
//! logs folder. The first rank to fail ends the job: the others get SIGTERM, then SIGKILL after
//! a grace period, and the failure names that rank, how it ended and its last log lines.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What `--nproc-per-node`, `--nnodes`, `--node-rank`, `--master-addr` and `--master-port` ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    pub nproc_per_node: usize,
    pub nnodes: usize,
    pub node_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
}

impl LaunchSpec {
    pub fn world_size(&self) -> usize {
        self.nproc_per_node * self.nnodes
    }

    /// The environment of local rank `local` (torchrun's names, plus our marker).
    pub fn rank_env(&self, local: usize) -> Vec<(&'static str, String)> {
        let rank = self.node_rank * self.nproc_per_node + local;
        vec![
            ("TUNEBRIDGE_LAUNCHED", "1".into()),
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", self.world_size().to_string()),
            ("LOCAL_RANK", local.to_string()),
            ("LOCAL_WORLD_SIZE", self.nproc_per_node.to_string()),
            ("GROUP_RANK", self.node_rank.to_string()),
            ("MASTER_ADDR", self.master_addr.clone()),
            ("MASTER_PORT", self.master_port.to_string()),
        ]
    }
}

/// How long a rank has to exit after SIGTERM before it is killed.
pub const GRACE: Duration = Duration::from_secs(3);

/// A rank that ended the job.
#[derive(Debug, Clone)]
pub struct RankFailure {
    pub rank: usize,
    /// "exit code 2", "killed by signal 9 (SIGKILL)", …
    pub how: String,
    /// Its log file (ranks other than 0) and the last lines of it.
    pub log: Option<PathBuf>,
    pub tail: Vec<String>,
}

impl std::fmt::Display for RankFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rank {} failed ({})", self.rank, self.how)?;
        if let Some(log) = &self.log {
            write!(f, "; its log: {}", log.display())?;
        }
        for line in &self.tail {
            write!(f, "\n  | {line}")?;
        }
        Ok(())
    }
}

/// Why a launch ended badly.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("could not start rank {rank}: {source}")]
    Spawn {
        rank: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    RankFailed(RankFailure),
}

struct Rank {
    rank: usize,
    child: Child,
    log: Option<PathBuf>,
    status: Option<ExitStatus>,
}

/// Spawn `program args…` once per local rank with [`LaunchSpec::rank_env`] and wait for all.
/// `Ok` when every rank exits 0; on the first failure every other rank is ended (SIGTERM, then
/// SIGKILL after [`GRACE`]) before this returns.
pub fn launch(
    spec: &LaunchSpec,
    program: &Path,
    args: &[OsString],
    logs: &Path,
) -> Result<(), LaunchError> {
    std::fs::create_dir_all(logs).map_err(|source| LaunchError::Io {
        path: logs.to_path_buf(),
        source,
    })?;
    let mut ranks: Vec<Rank> = Vec::new();
    for local in 0..spec.nproc_per_node {
        let rank = spec.node_rank * spec.nproc_per_node + local;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(spec.rank_env(local))
            .stdin(Stdio::null());
        let log = (rank != 0).then(|| logs.join(format!("rank-{rank}.log")));
        if let Some(path) = &log {
            let out = File::create(path).map_err(|source| LaunchError::Io {
                path: path.clone(),
                source,
            })?;
            let err = out.try_clone().map_err(|source| LaunchError::Io {
                path: path.clone(),
                source,
            })?;
            cmd.stdout(out).stderr(err);
        }
        match cmd.spawn() {
            Ok(child) => ranks.push(Rank {
                rank,
                child,
                log,
                status: None,
            }),
            Err(source) => {
                end_all(&mut ranks);
                return Err(LaunchError::Spawn { rank, source });
            }
        }
    }
    supervise(&mut ranks)
}

fn supervise(ranks: &mut [Rank]) -> Result<(), LaunchError> {
    loop {
        let mut failed: Vec<usize> = Vec::new();
        for (i, r) in ranks.iter_mut().enumerate() {
            if r.status.is_none() {
                if let Ok(Some(s)) = r.child.try_wait() {
                    r.status = Some(s);
                    if !s.success() {
                        failed.push(i);
                    }
                }
            }
        }
        if let Some(&first) = failed
            .iter()
            .find(|&&i| signal_of(ranks[i].status.unwrap()).is_some())
            .or(failed.first())
        {
            // a rank killed by a signal is the cause; its peers then fail in their collectives
            let failure = describe(&ranks[first]);
            end_all(ranks);
            return Err(LaunchError::RankFailed(failure));
        }
        if ranks.iter().all(|r| r.status.is_some()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to every rank still running, SIGKILL to those left after [`GRACE`], and reap all.
fn end_all(ranks: &mut [Rank]) {
    for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(r.child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        let mut running = 0;
        for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
            match r.child.try_wait() {
                Ok(Some(s)) => r.status = Some(s),
                _ => running += 1,
            }
        }
        if running == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for r in ranks.iter_mut().filter(|r| r.status.is_none()) {
        let _ = r.child.kill();
        r.status = r.child.wait().ok();
    }
}

fn signal_of(s: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    s.signal()
}

fn describe(r: &Rank) -> RankFailure {
    let status = r.status.expect("a failed rank has exited");
    let how = match (status.code(), signal_of(status)) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
        _ => status.to_string(),
    };
    let tail = r
        .log
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|text| {
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[lines.len().saturating_sub(15)..].to_vec()
        })
        .unwrap_or_default();
    RankFailure {
        rank: r.rank,
        how,
        log: r.log.clone(),
        tail,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize) -> LaunchSpec {
        LaunchSpec {
            nproc_per_node: n,
            nnodes: 1,
            node_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
        }
    }

    fn sh(script: &str) -> Vec<OsString> {
        vec!["-c".into(), script.into()]
    }

    #[test]
    fn ranks_get_torchrun_variables_and_all_succeed() {
        let logs = tempfile::tempdir().unwrap();
        let script =
            "echo \"$RANK/$WORLD_SIZE $LOCAL_RANK/$LOCAL_WORLD_SIZE $MASTER_ADDR:$MASTER_PORT\"";
        launch(&spec(3), Path::new("/bin/sh"), &sh(script), logs.path()).unwrap();
        let log = std::fs::read_to_string(logs.path().join("rank-2.log")).unwrap();
        assert_eq!(log.trim(), "2/3 2/3 127.0.0.1:29500");
        assert!(
            !logs.path().join("rank-0.log").exists(),
            "rank 0 keeps the terminal"
        );
    }

    #[test]
    fn a_killed_rank_ends_the_others_fast_and_is_named() {
        let logs = tempfile::tempdir().unwrap();
        // rank 1 kills itself after saying something; the others would sleep for a minute
        let script = "if [ \"$RANK\" = 1 ]; then echo about to die; kill -9 $$; fi; sleep 60";
        let t0 = Instant::now();
        let e = launch(&spec(3), Path::new("/bin/sh"), &sh(script), logs.path()).unwrap_err();
        let took = t0.elapsed();
        let LaunchError::RankFailed(f) = e else {
            panic!("{e}")
        };
        assert_eq!(f.rank, 1);
        assert_eq!(f.how, "killed by signal 9 (SIGKILL)");
        assert_eq!(f.tail, vec!["about to die".to_string()]);
        assert!(took < Duration::from_secs(10), "took {took:?}");
    }

    #[test]
    fn a_failing_rank_reports_its_exit_code() {
        let logs = tempfile::tempdir().unwrap();
        let script = "if [ \"$RANK\" = 2 ]; then echo bad config >&2; exit 2; fi; sleep 60";
        let e = launch(&spec(3), Path::new("/bin/sh"), &sh(script), logs.path()).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("rank 2 failed (exit code 2); its log: "),
            "{s}"
        );
        assert!(s.ends_with("| bad config"), "{s}");
    }
}
