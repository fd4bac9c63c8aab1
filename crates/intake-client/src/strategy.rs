//! How a client picks a node for each send.
//!
//! Key hash uses consistent hashing: every node owns [`VIRTUAL_NODES`]
//! points on a 64-bit ring ([`ring_hash`] of `addr#i`), and a key goes to the
//! first point at or after its own hash. When a node leaves, only the keys
//! it owned move; every other key stays where it was.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

/// Points each node owns on the key-hash ring.
pub const VIRTUAL_NODES: u32 = 64;

/// The node-choice strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// A uniformly random node.
    Random,
    /// Each node in turn.
    #[default]
    RoundRobin,
    /// The node with the lowest reported load (ties: the first listed).
    LeastLoad,
    /// The node that owns the key on a consistent-hash ring, so one key's
    /// records go to one node while the node list is stable.
    KeyHash,
}

/// A node the client may send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT`.
    pub addr: String,
    /// Last load the manager reported, 0–200 (0 for static nodes).
    pub load: u32,
}

/// The ring's hash: 64-bit FNV-1a, then MurmurHash3's 64-bit finaliser so
/// that similar inputs (`addr#1`, `addr#2`) land far apart. Stable across
/// platforms and Rust versions.
pub fn ring_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Picks among `nodes` (already without frozen ones). `turn` counts
/// round-robin turns; `key` is used by [`Strategy::KeyHash`] (a send
/// without a key hashes the stream name).
pub fn choose<'a>(
    strategy: Strategy,
    nodes: &'a [Endpoint],
    key: &[u8],
    turn: &AtomicUsize,
) -> Option<&'a Endpoint> {
    if nodes.is_empty() {
        return None;
    }
    match strategy {
        Strategy::Random => nodes.get(rand::rng().random_range(0..nodes.len())),
        Strategy::RoundRobin => nodes.get(turn.fetch_add(1, Ordering::Relaxed) % nodes.len()),
        Strategy::LeastLoad => nodes.iter().min_by_key(|n| n.load),
        Strategy::KeyHash => {
            let target = ring_hash(key);
            let mut best: Option<(u64, &Endpoint)> = None;
            let mut lowest: Option<(u64, &Endpoint)> = None;
            for node in nodes {
                for i in 0..VIRTUAL_NODES {
                    let point = ring_hash(format!("{}#{i}", node.addr).as_bytes());
                    if point >= target && best.is_none_or(|(p, _)| point < p) {
                        best = Some((point, node));
                    }
                    if lowest.is_none_or(|(p, _)| point < p) {
                        lowest = Some((point, node));
                    }
                }
            }
            // Past the last point the ring wraps to the first.
            best.or(lowest).map(|(_, node)| node)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AtomicUsize, Endpoint, Strategy, choose};
    use proptest::prelude::{any, prop_assert_eq, proptest};

    fn nodes(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| Endpoint {
                addr: format!("10.0.0.{i}:46802"),
                load: (i as u32 * 37) % 200,
            })
            .collect()
    }

    #[test]
    fn round_robin_visits_each_node_in_turn() {
        let nodes = nodes(3);
        let turn = AtomicUsize::new(0);
        let picked: Vec<&str> = (0..6)
            .map(|_| {
                choose(Strategy::RoundRobin, &nodes, b"", &turn)
                    .unwrap()
                    .addr
                    .as_str()
            })
            .collect();
        assert_eq!(picked[..3], picked[3..]);
        assert_eq!(picked[0], "10.0.0.0:46802");
        assert_ne!(picked[0], picked[1]);
    }

    #[test]
    fn least_load_picks_the_lowest_load() {
        let mut nodes = nodes(4);
        nodes[2].load = 0;
        nodes[0].load = 5;
        let turn = AtomicUsize::new(0);
        assert_eq!(
            choose(Strategy::LeastLoad, &nodes, b"", &turn)
                .unwrap()
                .addr,
            "10.0.0.2:46802"
        );
    }

    #[test]
    fn random_covers_every_node() {
        let nodes = nodes(3);
        let turn = AtomicUsize::new(0);
        let seen: std::collections::HashSet<&str> = (0..300)
            .map(|_| {
                choose(Strategy::Random, &nodes, b"", &turn)
                    .unwrap()
                    .addr
                    .as_str()
            })
            .collect();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn no_nodes_no_choice() {
        let turn = AtomicUsize::new(0);
        for s in [
            Strategy::Random,
            Strategy::RoundRobin,
            Strategy::LeastLoad,
            Strategy::KeyHash,
        ] {
            assert!(choose(s, &[], b"k", &turn).is_none());
        }
    }

    #[test]
    fn key_hash_spreads_keys_over_nodes() {
        let nodes = nodes(4);
        let turn = AtomicUsize::new(0);
        let mut counts = std::collections::HashMap::new();
        for k in 0..4000 {
            let node = choose(
                Strategy::KeyHash,
                &nodes,
                format!("key-{k}").as_bytes(),
                &turn,
            )
            .unwrap();
            *counts.entry(node.addr.clone()).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 4);
        assert!(counts.values().all(|&c| c > 500), "{counts:?}");
    }

    proptest! {
        /// When an unrelated node leaves, every key it did not own stays
        /// on the same node.
        #[test]
        fn key_hash_is_stable_when_an_unrelated_node_leaves(
            keys in proptest::collection::vec(any::<Vec<u8>>(), 1..50),
            count in 2usize..8,
            leaving in 0usize..8,
        ) {
            let all = nodes(count);
            let leaving = leaving % count;
            let rest: Vec<Endpoint> = all.iter().enumerate().filter(|(i, _)| *i != leaving).map(|(_, n)| n.clone()).collect();
            let turn = AtomicUsize::new(0);
            for key in &keys {
                let before = choose(Strategy::KeyHash, &all, key, &turn).unwrap();
                let after = choose(Strategy::KeyHash, &rest, key, &turn).unwrap();
                if before.addr != all[leaving].addr {
                    prop_assert_eq!(&before.addr, &after.addr);
                }
            }
        }
    }
}
