//! Which rank this process is, of how many, and where they meet: read from the environment
//! that tunebridge's own launcher, torchrun or Slurm sets (docs/ENGINE.md, "Launching").
//!
//! | variable | torchrun / our launcher | Slurm (`srun`) |
//! |---|---|---|
//! | global rank | `RANK` | `SLURM_PROCID` |
//! | world size | `WORLD_SIZE` | `SLURM_NTASKS` |
//! | rank on this node | `LOCAL_RANK` | `SLURM_LOCALID` |
//! | ranks on this node | `LOCAL_WORLD_SIZE` | `SLURM_NTASKS_PER_NODE` (`4` or `4(x2)`) |
//! | rendezvous | `MASTER_ADDR`, `MASTER_PORT` | the same, exported by the batch script |
//!
//! Under torchrun (`TORCHELASTIC_USE_AGENT_STORE=True`) the agent already hosts the TCPStore
//! at `MASTER_ADDR:MASTER_PORT`, so every rank connects as a client; otherwise rank 0 hosts it
//! (as `torch.distributed.init_process_group("env://")` does).

use std::fmt;

/// Where the world's description came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `tunebridge run --nproc-per-node N` (its children carry `TUNEBRIDGE_LAUNCHED=1`).
    Tunebridge,
    Torchrun,
    Slurm,
    /// `RANK`/`WORLD_SIZE` set by hand (or another launcher).
    Env,
}

/// This process's place in a multi-process run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    pub local_rank: usize,
    pub local_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// The store's server lives in torchrun's agent, not in rank 0.
    pub agent_store: bool,
    pub launcher: Launcher,
}

/// torchrun's and torch's default rendezvous port.
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// A launch environment that cannot be used, naming the variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct WorldError {
    pub variable: String,
    pub message: String,
}

impl World {
    /// The world this process's environment describes, `None` for a plain single process.
    pub fn from_env() -> Result<Option<World>, WorldError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`Self::from_env`] over any variable lookup (tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<World>, WorldError> {
        let launcher = if var("TUNEBRIDGE_LAUNCHED").is_some() {
            Launcher::Tunebridge
        } else if var("TORCHELASTIC_RUN_ID").is_some() || var("GROUP_RANK").is_some() {
            Launcher::Torchrun
        } else if var("RANK").is_some() || var("WORLD_SIZE").is_some() {
            Launcher::Env
        } else if var("SLURM_PROCID").is_some() && var("SLURM_NTASKS").is_some() {
            Launcher::Slurm
        } else {
            return Ok(None);
        };
        let num = |name: &str| -> Result<usize, WorldError> {
            let v = var(name).ok_or_else(|| WorldError {
                variable: name.into(),
                message: format!("not set, but the other {launcher} variables are"),
            })?;
            v.trim().parse().map_err(|_| WorldError {
                variable: name.into(),
                message: format!("`{v}` is not a non-negative integer"),
            })
        };
        let (rank, size, local_rank, local_size) = match launcher {
            Launcher::Slurm => {
                let per_node = var("SLURM_NTASKS_PER_NODE")
                    .or_else(|| var("SLURM_STEP_TASKS_PER_NODE"))
                    .and_then(|v| v.split('(').next().and_then(|n| n.trim().parse().ok()));
                let size = num("SLURM_NTASKS")?;
                (
                    num("SLURM_PROCID")?,
                    size,
                    num("SLURM_LOCALID")?,
                    per_node.unwrap_or(size),
                )
            }
            _ => {
                let size = num("WORLD_SIZE")?;
                let rank = num("RANK")?;
                let local_rank = var("LOCAL_RANK").map_or(Ok(rank), |_| num("LOCAL_RANK"))?;
                let local_size =
                    var("LOCAL_WORLD_SIZE").map_or(Ok(size), |_| num("LOCAL_WORLD_SIZE"))?;
                (rank, size, local_rank, local_size)
            }
        };
        if size == 0 || rank >= size {
            return Err(WorldError {
                variable: "RANK".into(),
                message: format!("rank {rank} is not below the world size {size}"),
            });
        }
        if local_rank >= local_size.max(1) {
            return Err(WorldError {
                variable: "LOCAL_RANK".into(),
                message: format!(
                    "local rank {local_rank} is not below the ranks on this node ({local_size})"
                ),
            });
        }
        let master_addr = match var("MASTER_ADDR") {
            Some(a) if !a.trim().is_empty() => a.trim().to_string(),
            _ if size == 1 => "127.0.0.1".into(),
            _ => {
                return Err(WorldError {
                    variable: "MASTER_ADDR".into(),
                    message: format!(
                        "not set: the {size} ranks need the host of rank 0 to meet at \
                         (under Slurm: `export MASTER_ADDR=$(scontrol show hostnames \
                         \"$SLURM_JOB_NODELIST\" | head -n 1)`)"
                    ),
                })
            }
        };
        let master_port = match var("MASTER_PORT") {
            None => DEFAULT_MASTER_PORT,
            Some(p) => p.trim().parse().map_err(|_| WorldError {
                variable: "MASTER_PORT".into(),
                message: format!("`{p}` is not a port number"),
            })?,
        };
        let agent_store = launcher == Launcher::Torchrun
            && var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Some(World {
            rank,
            size,
            local_rank,
            local_size,
            master_addr,
            master_port,
            agent_store,
            launcher,
        }))
    }

    /// Whether this process hosts the rendezvous store.
    pub fn hosts_store(&self) -> bool {
        self.rank == 0 && !self.agent_store
    }
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launcher::Tunebridge => "tunebridge launcher",
            Launcher::Torchrun => "torchrun",
            Launcher::Slurm => "Slurm",
            Launcher::Env => "RANK/WORLD_SIZE",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> Result<Option<World>, WorldError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn no_launcher_variables_is_a_single_process() {
        assert_eq!(world(&[("HOME", "/root")]).unwrap(), None);
    }

    #[test]
    fn torchrun_variables_and_its_agent_store() {
        let w = world(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "4"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "2"),
            ("GROUP_RANK", "1"),
            ("TORCHELASTIC_RUN_ID", "none"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank, w.local_size), (3, 4, 1, 2));
        assert_eq!((w.master_addr.as_str(), w.master_port), ("node0", 29400));
        assert_eq!(w.launcher, Launcher::Torchrun);
        assert!(w.agent_store && !w.hosts_store());
    }

    #[test]
    fn slurm_variables_with_a_repeated_task_count() {
        let w = world(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "4(x2)"),
            ("MASTER_ADDR", "gpu-001"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank, w.local_size), (5, 8, 1, 4));
        assert_eq!(w.master_port, DEFAULT_MASTER_PORT);
        assert_eq!(w.launcher, Launcher::Slurm);
    }

    #[test]
    fn bad_launch_variables_name_the_variable_and_the_fix() {
        let e = world(&[("RANK", "0"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert_eq!(e.variable, "MASTER_ADDR");
        assert!(e.message.contains("scontrol show hostnames"), "{e}");
        let e = world(&[("RANK", "2"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("rank 2 is not below the world size 2"),
            "{e}"
        );
        let e = world(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert_eq!(e.variable, "RANK");
        let e = world(&[
            ("RANK", "0"),
            ("WORLD_SIZE", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "99999"),
        ])
        .unwrap_err();
        assert_eq!(e.variable, "MASTER_PORT");
    }
}
