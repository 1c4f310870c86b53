//! [`XdpTestProgram`]: the XDP programs loaded but not attached, run on frames with
//! `BPF_PROG_TEST_RUN` (the parity tests and the benchmark).

use std::{collections::BTreeSet, time::Duration};

use agent_common::{XDP_PASS_PROGRAM, XDP_PROGRAM};
use aya::{
    maps::{MapData, RingBuf},
    programs::{TestRun, TestRunOptions},
    Ebpf,
};

use super::{
    klog::{GlobalLog, KernelLog, Sink},
    load::{load_object, xdp_program, LoadFor},
    peers::Maps,
    peers::PeerCounterRow,
    xdp::{drain, pass_flags},
    AttachMode, DataplaneError, XdpAdvert, XdpStats, TEST_RUN_IFINDEX,
};
use crate::packet::RxPolicy;

/// The XDP programs loaded but not attached, for running them on test input with
/// `BPF_PROG_TEST_RUN` (the parity tests and the benchmark). Maps are filled for
/// [`TEST_RUN_IFINDEX`], the ifindex test runs see.
pub struct XdpTestProgram {
    ebpf: Ebpf,
    /// As in [`XdpDataplane`](super::XdpDataplane).
    slots: BTreeSet<u32>,
    ring: RingBuf<MapData>,
    /// As in [`XdpDataplane`](super::XdpDataplane) (read by a task when loaded on a tokio
    /// runtime, else by [`XdpTestProgram::flush_kernel_log`]).
    klog: KernelLog,
}

/// The result of running the program once (or `repeat` times) on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestVerdict {
    /// The XDP action the program returned ([`XDP_PASS`](super::XDP_PASS) = 2,
    /// [`XDP_DROP`](super::XDP_DROP) = 1).
    pub action: u32,
    /// Average run time per repeat as reported by the kernel (whole nanoseconds).
    pub duration: Duration,
}

impl XdpTestProgram {
    /// Loads the embedded XDP programs (the filter and the trivial `XDP_PASS` baseline) without
    /// attaching them, with no policies. Their log records go to the agent's log.
    pub fn load() -> Result<Self, DataplaneError> {
        Self::load_logging_to(Box::new(GlobalLog))
    }

    /// [`XdpTestProgram::load`], with the programs' log records going to `sink`.
    pub fn load_logging_to(sink: Sink) -> Result<Self, DataplaneError> {
        let mut ebpf = load_object(LoadFor::Xdp {
            events_ring: agent_common::EVENTS_RING_BYTES,
        })?;
        for name in [XDP_PROGRAM, XDP_PASS_PROGRAM] {
            xdp_program(&mut ebpf, name)?
                .load()
                .map_err(|source| DataplaneError::Attach {
                    iface: "(test run)".to_owned(),
                    mode: AttachMode::Auto,
                    source,
                })?;
        }
        let ring = Maps::ring(&mut ebpf)?;
        let klog = KernelLog::start_with(&mut ebpf, "XDP test program", sink);
        Ok(Self {
            ebpf,
            slots: BTreeSet::new(),
            ring,
            klog,
        })
    }

    /// Loads the programs with `policies` in the maps.
    pub fn with_policies(policies: &[RxPolicy]) -> Result<Self, DataplaneError> {
        let mut p = Self::load()?;
        p.set_policies(policies)?;
        Ok(p)
    }

    /// Replaces the policies.
    pub fn set_policies(&mut self, policies: &[RxPolicy]) -> Result<(), DataplaneError> {
        Maps::set_policies(&mut self.ebpf, TEST_RUN_IFINDEX, policies, &mut self.slots)
    }

    /// Sets the pass-to-stack flag.
    pub fn set_pass_to_stack(&mut self, pass: bool) -> Result<(), DataplaneError> {
        Maps::set_iface_flags(&mut self.ebpf, pass_flags(pass))
    }

    /// Runs the filter on `frame` `repeat` times.
    pub fn run(&mut self, frame: &[u8], repeat: u32) -> Result<TestVerdict, DataplaneError> {
        self.run_program(XDP_PROGRAM, frame, repeat)
    }

    /// Runs the trivial `XDP_PASS` program on `frame` `repeat` times (a baseline for timings).
    pub fn run_baseline(
        &mut self,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestVerdict, DataplaneError> {
        self.run_program(XDP_PASS_PROGRAM, frame, repeat)
    }

    fn run_program(
        &mut self,
        name: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestVerdict, DataplaneError> {
        let prog = xdp_program(&mut self.ebpf, name)?;
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

    /// Takes up to `max` queued adverts.
    pub fn drain_events(&mut self, max: usize) -> Vec<XdpAdvert> {
        drain(&mut self.ring, max)
    }

    /// Forwards the log records queued so far when loaded outside a tokio runtime (on one, a
    /// task forwards them as they come).
    pub fn flush_kernel_log(&mut self) {
        self.klog.flush();
    }

    /// Every per-peer counter row.
    pub fn peer_counters(&self) -> Result<Vec<PeerCounterRow>, DataplaneError> {
        Maps::peer_counters(&self.ebpf, TEST_RUN_IFINDEX, &self.slots)
    }

    /// The loaded object, mutably: the SYN counter maps
    /// ([`tcp::set_syn_ports`](super::tcp::set_syn_ports)).
    pub fn object_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The program's other counts.
    pub fn stats(&self) -> Result<XdpStats, DataplaneError> {
        Maps::stats(&self.ebpf, TEST_RUN_IFINDEX, &self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::{klog, XDP_DROP, XDP_PASS};

    /// The valid advert of the test vectors (VRRPv3 over IPv4, VRID of `testvectors::policies`).
    fn valid_advert() -> Vec<u8> {
        crate::packet::testvectors::cases()
            .into_iter()
            .find(|c| c.name == "accept_v3_ipv4_pseudo_header_checksum")
            .expect("the test vector")
            .frame
    }

    #[test]
    fn the_xdp_program_logs_a_full_ring_rarely_and_nothing_on_its_usual_paths() {
        use klog::testing::{can_load, runtime, Capture};
        if !can_load() {
            return;
        }
        runtime().block_on(async {
            let cap = Capture::default();
            let mut p = XdpTestProgram::load_logging_to(Box::new(cap.clone())).expect("load");
            assert!(p.klog.is_forwarding(), "a task forwards the records");
            p.set_policies(&crate::packet::testvectors::policies())
                .expect("policies");
            let valid = valid_advert();
            // The usual paths: valid adverts (ring not full), an invalid one, another VRID, a
            // frame that is not VRRP.
            let mut bad_sum = valid.clone();
            bad_sum[14 + 20 + 6] ^= 0xff;
            let mut other_vrid = valid.clone();
            other_vrid[14 + 21] = 250;
            let mut tcp = valid.clone();
            tcp[14 + 9] = 6;
            assert_eq!(p.run(&valid, 100).expect("run").action, XDP_DROP);
            assert_eq!(p.run(&bad_sum, 100).expect("run").action, XDP_DROP);
            assert_eq!(p.run(&other_vrid, 100).expect("run").action, XDP_PASS);
            assert_eq!(p.run(&tcp, 100).expect("run").action, XDP_PASS);
            assert_eq!(p.drain_events(usize::MAX).len(), 100);
            let quiet = cap.settle(0, Duration::from_millis(300)).await;
            assert!(quiet.is_empty(), "no record on the usual paths: {quiet:?}");
            assert_eq!(p.stats().expect("stats").ring_full, 0);

            // The error path: nobody drains the ring (it holds some 3600 events), 10^4 adverts.
            let repeat = 10_000;
            p.run(&valid, repeat).expect("run");
            let lost = p.stats().expect("stats").ring_full;
            assert!(lost > 5000, "the ring filled up: {lost} events lost");
            let got = cap.settle(1, Duration::from_secs(3)).await;
            // Let any later record in, then count them all.
            let got = cap.settle(got.len() + 64, Duration::from_millis(300)).await;
            assert!(!got.is_empty(), "a full ring is logged");
            for (level, target, msg) in &got {
                assert_eq!(*level, log::Level::Warn, "{msg}");
                assert!(target.starts_with("xvrrp_ebpf"), "{target}");
                assert!(msg.contains("advert ring buffer full"), "{msg}");
            }
            // One record per power of two of a CPU's count: a handful, not one per frame.
            let per_cpu = u64::BITS - lost.leading_zeros();
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
            assert!(
                got.len() as u64 <= u64::from(per_cpu) * cpus,
                "{} records for {lost} lost events",
                got.len()
            );
            assert!(
                got.iter().any(|(_, _, m)| m.contains("full: 1 valid")),
                "the first loss is logged: {got:?}"
            );
        });
    }
}
