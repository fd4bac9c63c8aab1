//! The manager's node registry: who heartbeats, with what load, and who is
//! online (a heartbeat within [`MISSED_HEARTBEATS`] intervals and status
//! online). Time is passed in, so the rules are tested without sleeping.

use intake_format::cluster::{Heartbeat, MAX_LOAD, NodeStatus, NodeView};
use parking_lot::Mutex;

/// A node that misses this many heartbeat intervals is offline.
pub const MISSED_HEARTBEATS: u64 = 3;

/// The nodes that reported to this manager.
#[derive(Debug)]
pub struct NodeRegistry {
    interval_ms: u64,
    nodes: Mutex<Vec<NodeView>>,
}

impl NodeRegistry {
    /// A registry expecting a heartbeat every `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        Self {
            interval_ms: interval_ms.max(1),
            nodes: Mutex::new(Vec::new()),
        }
    }

    /// The heartbeat interval nodes are expected to keep.
    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    /// Records a heartbeat received at `now_ms`; a node is known by its
    /// `ip:port` and keeps its id across restarts of the node.
    pub fn report(&self, heartbeat: &Heartbeat, now_ms: u64) -> u32 {
        let mut nodes = self.nodes.lock();
        let load = heartbeat.load.min(MAX_LOAD);
        if let Some(node) = nodes
            .iter_mut()
            .find(|n| n.ip == heartbeat.ip && n.port == heartbeat.port)
        {
            node.protocol.clone_from(&heartbeat.protocol);
            node.load = load;
            node.status = heartbeat.status;
            node.last_heartbeat_ms = now_ms;
            return node.id;
        }
        let id = nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        nodes.push(NodeView {
            id,
            ip: heartbeat.ip.clone(),
            port: heartbeat.port,
            protocol: heartbeat.protocol.clone(),
            load,
            status: heartbeat.status,
            last_heartbeat_ms: now_ms,
            online: true,
        });
        id
    }

    /// Every known node, with `online` computed for `now_ms`, by id.
    pub fn nodes(&self, now_ms: u64) -> Vec<NodeView> {
        let deadline = self.interval_ms * MISSED_HEARTBEATS;
        let mut nodes: Vec<NodeView> = self
            .nodes
            .lock()
            .iter()
            .map(|n| NodeView {
                online: n.status == NodeStatus::Online
                    && now_ms.saturating_sub(n.last_heartbeat_ms) < deadline,
                ..n.clone()
            })
            .collect();
        nodes.sort_by_key(|n| n.id);
        nodes
    }

    /// The nodes online at `now_ms`.
    pub fn online(&self, now_ms: u64) -> Vec<NodeView> {
        self.nodes(now_ms)
            .into_iter()
            .filter(|n| n.online)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(port: u16, load: u32, status: NodeStatus) -> Heartbeat {
        Heartbeat {
            ip: "10.0.0.1".into(),
            port,
            protocol: "HTTP".into(),
            load,
            status,
        }
    }

    #[test]
    fn a_node_is_offline_after_three_missed_intervals() {
        let registry = NodeRegistry::new(5_000);
        registry.report(&beat(1, 10, NodeStatus::Online), 1_000);
        assert_eq!(registry.online(1_000 + 14_999).len(), 1);
        assert!(registry.online(1_000 + 15_000).is_empty());
        assert!(!registry.nodes(16_000)[0].online);
        registry.report(&beat(1, 10, NodeStatus::Online), 20_000);
        assert_eq!(registry.online(20_001).len(), 1, "back after a heartbeat");
    }

    #[test]
    fn ids_are_stable_and_load_is_capped() {
        let registry = NodeRegistry::new(5_000);
        assert_eq!(registry.report(&beat(1, 10, NodeStatus::Online), 0), 1);
        assert_eq!(registry.report(&beat(2, 999, NodeStatus::Online), 0), 2);
        assert_eq!(registry.report(&beat(1, 20, NodeStatus::Online), 1), 1);
        let nodes = registry.nodes(2);
        assert_eq!((nodes[0].load, nodes[1].load), (20, MAX_LOAD));
    }

    #[test]
    fn a_draining_node_is_not_online() {
        let registry = NodeRegistry::new(5_000);
        registry.report(&beat(1, 0, NodeStatus::Online), 0);
        registry.report(&beat(2, 0, NodeStatus::Draining), 0);
        let online = registry.online(1);
        assert_eq!(online.iter().map(|n| n.port).collect::<Vec<_>>(), [1]);
    }
}
