//! The verdict a connection remembers, and how new rules are installed: a packet of a
//! tracked connection reuses the rule its direction was last classified to, as long as
//! the rules (their generation) and the packet fields the connection's key does not fix
//! are the same; new rules bump the generation, are scanned at once and looked up
//! through trees built in the background as soon as those are ready.

use super::Firewall;
use super::classify::Classifier;
use super::conntrack::{Seen, Verdict};
use super::rules::{self, Packet};

/// What a packet's classification depends on beyond its connection's key: input and
/// output port, state, ICMP type, and whether it carries ports at all (a later fragment
/// does not). `None` for port indices it cannot hold.
fn context(p: &Packet) -> Option<u64> {
    let out = match p.out_port {
        None => 0xffff,
        Some(o) if o < 0xffff => o as u64,
        Some(_) => return None,
    };
    if p.in_port >= 0xffff {
        return None;
    }
    let icmp = p.icmp_type.map_or(0x100, u64::from);
    Some(
        p.in_port as u64
            | out << 16
            | u64::from(p.ct) << 32
            | icmp << 40
            | u64::from(p.ports.is_some()) << 49,
    )
}

impl Firewall {
    /// The first matching rule: remembered by the packet's connection when it was
    /// classified under the same rules with the same context, else from the classifier.
    #[inline]
    pub(super) fn classify(&mut self, p: &Packet, seen: Seen) -> Option<usize> {
        #[cfg(test)]
        if self.uncached {
            return self.cls.scan(p);
        }
        let (Seen::Known { slot, reply }, Some(context)) = (seen, context(p)) else {
            return self.cls.lookup(p);
        };
        let v = self.ct.verdict(slot, reply);
        if v.generation == self.generation && v.context == context {
            self.stats.cached += 1;
            return (v.rule != u32::MAX).then_some(v.rule as usize);
        }
        let rule = self.cls.lookup(p);
        let v = Verdict {
            generation: self.generation,
            context,
            rule: rule.map_or(u32::MAX, |r| r as u32),
        };
        self.ct.remember(slot, reply, v);
        rule
    }

    /// Remember `rule` as the verdict of the original direction of the connection in
    /// `slot`, which `p` just opened.
    pub(super) fn remember(&mut self, slot: usize, p: &Packet, rule: Option<usize>) {
        if let Some(context) = context(p) {
            let v = Verdict {
                generation: self.generation,
                context,
                rule: rule.map_or(u32::MAX, |r| r as u32),
            };
            self.ct.remember(slot, false, v);
        }
    }

    /// Install new rules: every remembered verdict becomes stale. They are scanned
    /// (exactly, and at once) while a background thread builds their trees, which
    /// [`Firewall::adopt_trees`] swaps in: the packet path never waits for a build.
    pub(super) fn set_rules(&mut self, rules: Vec<rules::Rule>) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.ct.forget_verdicts();
            self.generation = 1;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let copy = rules.clone();
        let spawned = std::thread::Builder::new()
            .name("vecbox-fw-build".into())
            .spawn(move || {
                let _ = tx.send(Classifier::new(copy));
            });
        match spawned {
            Ok(_) => {
                self.cls = Classifier::linear(rules);
                self.pending = Some(rx);
            }
            Err(e) => {
                tracing::warn!("firewall: building the rule trees here ({e} starting a thread)");
                self.cls = Classifier::new(rules);
                self.pending = None;
            }
        }
    }

    /// Swap in the trees built in the background, if they are ready. The answers do not
    /// change (the rules are the same), so remembered verdicts stay valid.
    pub(super) fn adopt_trees(&mut self) {
        let Some(rx) = &self.pending else { return };
        match rx.try_recv() {
            Ok(cls) => {
                let s = cls.stats();
                tracing::info!(
                    rules = s.rules,
                    bytes = s.bytes,
                    "firewall: rule trees built"
                );
                self.cls = cls;
                self.pending = None;
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.pending = None;
                self.cls = Classifier::new(self.cls.rules().to_vec());
            }
        }
    }

    /// `true` once the current rules are looked up through their trees.
    pub fn rules_indexed(&self) -> bool {
        self.cls.indexed()
    }
}
