//! Loading and attaching the embedded eBPF programs.
//!
//! The object built by `cargo xtask build-ebpf` is embedded in the binary at build time (see
//! `agent/build.rs`), so a built `xvrrp` needs nothing beside it. Programs are detached when the
//! [`XdpAttachment`] is dropped (aya detaches links it owns on drop).

use std::fmt;

use agent_common::{xdp_stats, XDP_PROGRAM, XDP_STATS_MAP};
use aya::{
    maps::PerCpuArray,
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode},
    Ebpf,
};

/// The eBPF object embedded at build time (empty when the agent was built without it).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xvrrp-ebpf.o"));

/// Errors from loading or attaching the kernel programs. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The binary was built before `cargo xtask build-ebpf` produced the object.
    #[error("this xvrrp was built without its eBPF object: run `cargo xtask build-ebpf` and rebuild, or use --rx socket")]
    NoObject,
    /// The interface name cannot name an interface (empty, too long, or with a NUL byte).
    #[error("invalid interface name {0:?}")]
    BadInterface(String),
    /// The embedded object did not load (verifier, permissions, kernel support).
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program or map is missing from the object or has the wrong type.
    #[error("the eBPF object lacks {0}")]
    Missing(&'static str),
    /// Loading or attaching a program failed.
    #[error(
        "XDP program on {iface} ({mode}): {source}; try --rx socket to receive adverts without XDP"
    )]
    Attach {
        /// Interface name.
        iface: String,
        /// The mode that was tried last.
        mode: AttachMode,
        /// The underlying error.
        #[source]
        source: ProgramError,
    },
    /// Reading a map failed.
    #[error("reading eBPF map {map}: {source}")]
    Map {
        /// Map name.
        map: &'static str,
        /// The underlying error.
        #[source]
        source: aya::maps::MapError,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(#[source] ProgramError),
}

/// How the XDP program should be attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic mode when the driver refuses.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
        })
    }
}

/// Packet counts kept by the XDP program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpStats {
    /// Every frame the program saw.
    pub seen: u64,
    /// Frames that were IPv4/IPv6 protocol 112.
    pub vrrp: u64,
}

/// True when the binary carries its eBPF object.
pub fn has_embedded_object() -> bool {
    !EBPF_OBJECT.is_empty()
}

fn load_object() -> Result<Ebpf, DataplaneError> {
    if !has_embedded_object() {
        return Err(DataplaneError::NoObject);
    }
    // The kernel charges BPF memory to the memory cgroup; raising RLIMIT_MEMLOCK is only needed on
    // old kernels and may be refused (no CAP_SYS_RESOURCE). Its failure is deliberately not fatal.
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialised struct.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    Ok(Ebpf::load(EBPF_OBJECT)?)
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, DataplaneError> {
    ebpf.program_mut(XDP_PROGRAM)
        .ok_or(DataplaneError::Missing("the XDP program"))?
        .try_into()
        .map_err(|_| DataplaneError::Missing("an XDP program of the right type"))
}

/// The XDP program attached to one interface. Dropping it detaches the program.
pub struct XdpAttachment {
    ebpf: Ebpf,
    iface: String,
    mode: AttachMode,
}

impl fmt::Debug for XdpAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpAttachment")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .finish()
    }
}

impl XdpAttachment {
    /// Loads the embedded object and attaches its XDP program to `iface`.
    ///
    /// With [`AttachMode::Auto`], native mode is tried first; when the driver refuses it, generic
    /// mode is tried and `on_fallback` is told why.
    pub fn attach(
        iface: &str,
        mode: AttachMode,
        mut on_fallback: impl FnMut(&str),
    ) -> Result<Self, DataplaneError> {
        if iface.is_empty()
            || iface.len() >= libc::IFNAMSIZ
            || iface.contains('\0')
            || iface.contains('/')
        {
            return Err(DataplaneError::BadInterface(iface.to_owned()));
        }
        let mut ebpf = load_object()?;
        let prog = xdp_program(&mut ebpf)?;
        prog.load().map_err(|source| DataplaneError::Attach {
            iface: iface.to_owned(),
            mode,
            source,
        })?;
        let used = match mode {
            AttachMode::Native => {
                prog.attach(iface, XdpMode::Driver)
                    .map_err(|source| DataplaneError::Attach {
                        iface: iface.to_owned(),
                        mode,
                        source,
                    })?;
                AttachMode::Native
            }
            AttachMode::Generic => {
                prog.attach(iface, XdpMode::Skb)
                    .map_err(|source| DataplaneError::Attach {
                        iface: iface.to_owned(),
                        mode,
                        source,
                    })?;
                AttachMode::Generic
            }
            AttachMode::Auto => match prog.attach(iface, XdpMode::Driver) {
                Ok(_) => AttachMode::Native,
                Err(native) => {
                    on_fallback(&format!(
                        "native XDP on {iface} refused ({native}); trying generic mode"
                    ));
                    prog.attach(iface, XdpMode::Skb)
                        .map_err(|source| DataplaneError::Attach {
                            iface: iface.to_owned(),
                            mode: AttachMode::Generic,
                            source,
                        })?;
                    AttachMode::Generic
                }
            },
        };
        Ok(Self {
            ebpf,
            iface: iface.to_owned(),
            mode: used,
        })
    }

    /// The interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.iface
    }

    /// The mode the program ended up attached in (never `Auto`).
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// Reads the program's packet counters.
    pub fn stats(&self) -> Result<XdpStats, DataplaneError> {
        read_stats(&self.ebpf)
    }
}

fn read_stats(ebpf: &Ebpf) -> Result<XdpStats, DataplaneError> {
    let map = ebpf
        .map(XDP_STATS_MAP)
        .ok_or(DataplaneError::Missing("the stats map"))?;
    let arr = PerCpuArray::<_, u64>::try_from(map).map_err(|source| DataplaneError::Map {
        map: XDP_STATS_MAP,
        source,
    })?;
    let sum = |idx: u32| -> Result<u64, DataplaneError> {
        let vals = arr.get(&idx, 0).map_err(|source| DataplaneError::Map {
            map: XDP_STATS_MAP,
            source,
        })?;
        Ok(vals.iter().copied().sum())
    };
    Ok(XdpStats {
        seen: sum(xdp_stats::SEEN)?,
        vrrp: sum(xdp_stats::VRRP)?,
    })
}

/// The XDP program loaded but not attached, for running it on test input with
/// `BPF_PROG_TEST_RUN` (unit tests of the verdicts, and the benchmark).
pub struct XdpTestProgram {
    ebpf: Ebpf,
}

/// The result of running the program once (or `repeat` times) on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestVerdict {
    /// The XDP action the program returned (`XDP_PASS` = 2, `XDP_DROP` = 1).
    pub action: u32,
    /// Average run time per repeat as reported by the kernel.
    pub duration: std::time::Duration,
}

impl XdpTestProgram {
    /// Loads the embedded XDP program without attaching it.
    pub fn load() -> Result<Self, DataplaneError> {
        let mut ebpf = load_object()?;
        xdp_program(&mut ebpf)?
            .load()
            .map_err(|source| DataplaneError::Attach {
                iface: "(test run)".to_owned(),
                mode: AttachMode::Auto,
                source,
            })?;
        Ok(Self { ebpf })
    }

    /// Runs the program on `frame` `repeat` times.
    pub fn run(&mut self, frame: &[u8], repeat: u32) -> Result<TestVerdict, DataplaneError> {
        let prog = xdp_program(&mut self.ebpf)?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..Default::default()
        };
        let res = prog.test_run(opts).map_err(DataplaneError::TestRun)?;
        Ok(TestVerdict {
            action: res.return_value,
            duration: res.duration,
        })
    }

    /// Reads the program's packet counters.
    pub fn stats(&self) -> Result<XdpStats, DataplaneError> {
        read_stats(&self.ebpf)
    }
}
