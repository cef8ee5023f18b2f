//! Where the CPU time of a measurement goes: busy time of every CPU from `/proc/stat`
//! (user, system, softirq — hard interrupts counted with softirq — and steal), and the
//! CPU time of the device under test's processes (every process in their process
//! groups, all threads: `utime + stime` from `/proc/PID/stat`). Both are read at the
//! start and the end of a measurement; the difference, with the packets and bits that
//! crossed meanwhile, is a [`Usage`].
//!
//! The kernel counts in clock ticks (`USER_HZ`, 100 per second here): over the default
//! 5 × 2 s of a row that is 1000 ticks per CPU, a resolution of 0.1 %.

use std::time::Instant;

use serde::Serialize;

use super::BenchError;

/// Per-CPU tick counters: user, nice, system, idle, iowait, irq, softirq, steal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub cpus: Vec<[u64; 8]>,
}

/// Parse `/proc/stat`'s `cpuN` lines (the aggregate `cpu` line is skipped).
pub fn parse_stat(text: &str) -> Stat {
    let mut cpus = Vec::new();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(n) = name.strip_prefix("cpu").filter(|n| !n.is_empty()) else {
            continue;
        };
        let Ok(i) = n.parse::<usize>() else { continue };
        let mut v = [0u64; 8];
        for (slot, x) in v.iter_mut().zip(f) {
            *slot = x.parse().unwrap_or(0);
        }
        if cpus.len() <= i {
            cpus.resize(i + 1, [0; 8]);
        }
        cpus[i] = v;
    }
    Stat { cpus }
}

fn ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// The `utime + stime` ticks of every process whose process group is in `pgids`, from
/// `/proc` (0 when `pgids` is empty).
pub fn group_ticks(pgids: &[i32]) -> u64 {
    if pgids.is_empty() {
        return 0;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut sum = 0;
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some((pgrp, ticks)) = parse_pid_stat(&stat)
            && pgids.contains(&pgrp)
        {
            sum += ticks;
        }
    }
    sum
}

/// (process group, utime + stime) from one `/proc/PID/stat` line.
pub fn parse_pid_stat(line: &str) -> Option<(i32, u64)> {
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// Counters at one instant.
#[derive(Clone, Debug)]
pub struct Snapshot {
    at: Instant,
    stat: Stat,
    dut_ticks: u64,
}

/// Read `/proc/stat` and the DUT's process groups now.
pub fn snapshot(dut_pgids: &[i32]) -> Result<Snapshot, BenchError> {
    let text = std::fs::read_to_string("/proc/stat")
        .map_err(|e| BenchError::Command(format!("reading /proc/stat: {e}")))?;
    Ok(Snapshot {
        at: Instant::now(),
        stat: parse_stat(&text),
        dut_ticks: group_ticks(dut_pgids),
    })
}

/// One CPU's time over a measurement, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CpuTime {
    pub cpu: usize,
    /// user + nice.
    pub user_s: f64,
    pub system_s: f64,
    /// softirq + hard interrupts.
    pub softirq_s: f64,
    /// Time the hypervisor ran something else (not busy for us, but a sign of a noisy
    /// host).
    pub steal_s: f64,
    /// idle + iowait.
    pub idle_s: f64,
}

impl CpuTime {
    pub fn busy_s(&self) -> f64 {
        self.user_s + self.system_s + self.softirq_s
    }
}

/// CPU time and work of one measurement (or the sum of several).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Wall time.
    pub secs: f64,
    pub per_cpu: Vec<CpuTime>,
    /// CPU time of the DUT's processes (0 for the kernel and the ceiling).
    pub dut_s: f64,
    /// Frames the generator sent and the sink received (TCP: sink frames), and bits
    /// delivered (frame bytes × 8, or iperf3's goodput × time).
    pub offered_pkts: f64,
    pub delivered_pkts: f64,
    pub delivered_bits: f64,
}

impl Usage {
    /// The CPU time between `a` and `b`.
    pub fn between(a: &Snapshot, b: &Snapshot) -> Usage {
        let hz = ticks_per_sec();
        let per_cpu = b
            .stat
            .cpus
            .iter()
            .enumerate()
            .map(|(i, now)| {
                let was = a.stat.cpus.get(i).copied().unwrap_or(*now);
                let d = |k: usize| now[k].saturating_sub(was[k]) as f64 / hz;
                CpuTime {
                    cpu: i,
                    user_s: d(0) + d(1),
                    system_s: d(2),
                    softirq_s: d(5) + d(6),
                    steal_s: d(7),
                    idle_s: d(3) + d(4),
                }
            })
            .collect();
        Usage {
            secs: b.at.duration_since(a.at).as_secs_f64(),
            per_cpu,
            dut_s: b.dut_ticks.saturating_sub(a.dut_ticks) as f64 / hz,
            ..Usage::default()
        }
    }

    /// Add another measurement of the same scenario.
    pub fn add(&mut self, o: &Usage) {
        self.secs += o.secs;
        self.dut_s += o.dut_s;
        self.offered_pkts += o.offered_pkts;
        self.delivered_pkts += o.delivered_pkts;
        self.delivered_bits += o.delivered_bits;
        for c in &o.per_cpu {
            match self.per_cpu.iter_mut().find(|m| m.cpu == c.cpu) {
                Some(m) => {
                    m.user_s += c.user_s;
                    m.system_s += c.system_s;
                    m.softirq_s += c.softirq_s;
                    m.steal_s += c.steal_s;
                    m.idle_s += c.idle_s;
                }
                None => self.per_cpu.push(c.clone()),
            }
        }
    }

    /// Busy CPU seconds of all CPUs.
    pub fn busy_s(&self) -> f64 {
        self.per_cpu.iter().map(CpuTime::busy_s).sum()
    }

    /// `cpu0 98 % (u 20 s 31 si 47)` for each CPU: busy share of the wall time and its
    /// user/system/softirq parts, in percent.
    pub fn describe(&self) -> String {
        let pct = |x: f64| (100.0 * x / self.secs.max(1e-9)).round();
        self.per_cpu
            .iter()
            .map(|c| {
                let mut s = format!(
                    "cpu{} {} % (u {} s {} si {})",
                    c.cpu,
                    pct(c.busy_s()),
                    pct(c.user_s),
                    pct(c.system_s),
                    pct(c.softirq_s)
                );
                if c.steal_s > 0.01 * self.secs {
                    s += &format!(" steal {} %", pct(c.steal_s));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_parse() {
        let s = parse_stat(
            "cpu  10 0 20 300 0 0 5 0 0 0\ncpu0 4 1 10 150 2 1 3 7 0 0\ncpu1 6 0 10 150 0 0 2 0 0 0\nintr 1 2\nctxt 99\n",
        );
        assert_eq!(s.cpus.len(), 2);
        assert_eq!(s.cpus[0], [4, 1, 10, 150, 2, 1, 3, 7]);
        // The real file parses too.
        let real = parse_stat(&std::fs::read_to_string("/proc/stat").unwrap());
        assert_eq!(
            real.cpus.len(),
            std::thread::available_parallelism().unwrap().get()
        );
    }

    #[test]
    fn pid_stat_keeps_names_with_spaces_and_parens() {
        let line = "1234 (a (b) c) S 1 1200 1200 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 1 0 99";
        assert_eq!(parse_pid_stat(line), Some((1200, 42)));
        assert_eq!(parse_pid_stat("garbage"), None);
        // This process's own group is found.
        let me = nix::unistd::getpgrp().as_raw();
        let mine = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert_eq!(parse_pid_stat(&mine).unwrap().0, me);
        assert_eq!(group_ticks(&[]), 0);
    }

    #[test]
    fn usage_splits_and_sums() {
        let a = Snapshot {
            at: Instant::now(),
            stat: parse_stat("cpu0 0 0 0 0 0 0 0 0\ncpu1 0 0 0 0 0 0 0 0\n"),
            dut_ticks: 10,
        };
        let b = Snapshot {
            at: a.at + std::time::Duration::from_secs(1),
            stat: parse_stat("cpu0 20 10 30 0 0 10 30 0\ncpu1 50 0 0 50 0 0 0 0\n"),
            dut_ticks: 60,
        };
        let mut u = Usage::between(&a, &b);
        let hz = ticks_per_sec();
        assert!((u.busy_s() - 150.0 / hz).abs() < 1e-9);
        assert!((u.dut_s - 50.0 / hz).abs() < 1e-9);
        assert!((u.per_cpu[0].softirq_s - 40.0 / hz).abs() < 1e-9);
        let once = u.clone();
        u.add(&once);
        assert!((u.busy_s() - 300.0 / hz).abs() < 1e-9);
        assert!((u.secs - 2.0).abs() < 1e-9);
        if hz == 100.0 {
            assert_eq!(
                once.describe(),
                "cpu0 100 % (u 30 s 30 si 40), cpu1 50 % (u 50 s 0 si 0)"
            );
        }
    }
}
