//! Fault injection machinery: a small seeded generator and the gate that forces races.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

/// xorshift64*, seeded through splitmix64 (so any seed, 0 included, gives a good stream).
#[derive(Clone, Debug)]
pub(crate) struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

/// How far a gate has got: tickets handed out and tickets done.
#[derive(Debug)]
struct Progress {
    size: usize,
    arrived: usize,
    finished: BTreeSet<usize>,
}

impl Progress {
    /// Whether ticket `ticket` may be processed: everyone has arrived and every earlier ticket
    /// is done.
    fn ready_for(&self, ticket: usize) -> bool {
        self.arrived >= self.size && (0..ticket).all(|t| self.finished.contains(&t))
    }
}

/// Holds the first `size` requests of an operation type until all have arrived, then lets them
/// through one at a time in arrival order.
#[derive(Debug)]
pub(crate) struct Gate {
    progress: watch::Sender<Progress>,
}

impl Gate {
    pub fn new(size: usize) -> Gate {
        Gate { progress: watch::Sender::new(Progress { size, arrived: 0, finished: BTreeSet::new() }) }
    }

    /// A ticket for the next request, while the gate still holds requests (called under the
    /// state lock, so arrival order is the order of these calls).
    pub fn admit(self: &Arc<Gate>) -> Option<Turn> {
        let mut ticket = None;
        self.progress.send_if_modified(|p| {
            if p.arrived < p.size {
                ticket = Some(p.arrived);
                p.arrived += 1;
                true
            } else {
                false
            }
        });
        ticket.map(|ticket| Turn { gate: self.clone(), ticket })
    }
}

/// A held request's place in its gate; dropping it (after processing, or if the request is
/// abandoned) lets the next one through.
#[derive(Debug)]
pub(crate) struct Turn {
    gate: Arc<Gate>,
    ticket: usize,
}

impl Turn {
    /// Waits until this request's turn.
    pub async fn wait(&self) {
        let mut progress = self.gate.progress.subscribe();
        // The sender lives in `self.gate`, so this cannot fail.
        let _ = progress.wait_for(|p| p.ready_for(self.ticket)).await;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.gate.progress.send_modify(|p| {
            p.finished.insert(self.ticket);
        });
    }
}
