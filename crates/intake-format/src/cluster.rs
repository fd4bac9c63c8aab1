//! Wire types of the cluster: node heartbeats, the manager's node list, and
//! InLong Manager's `getIpList` and heartbeat shapes.
//!
//! Native heartbeats are `POST /v1/cluster/heartbeat` with [`Heartbeat`];
//! InLong components report [`InlongHeartbeatMsg`] to
//! `/inlong/manager/openapi/heartbeat/report`; SDKs discover nodes with
//! `/inlong/manager/openapi/dataproxy/getIpList/{groupId}`
//! ([`InlongResponse`] of [`IpList`]).

use serde::{Deserialize, Serialize};

/// The highest load a node reports (InLong's SDK scale is 0–200).
pub const MAX_LOAD: u32 = 200;

/// Whether a node takes traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Serving.
    #[default]
    Online,
    /// Draining before a stop: alive, but clients should go elsewhere.
    Draining,
}

/// A node's heartbeat to its manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The address clients dial (the node's `--advertise` host).
    pub ip: String,
    /// The port clients dial.
    pub port: u16,
    /// `HTTP` (the only protocol intake serves).
    pub protocol: String,
    /// Current load, 0 (idle) to [`MAX_LOAD`].
    pub load: u32,
    /// Whether the node takes traffic.
    #[serde(default)]
    pub status: NodeStatus,
}

/// A node as the manager knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Stable id, assigned in order of first heartbeat.
    pub id: u32,
    /// Address clients dial.
    pub ip: String,
    /// Port clients dial.
    pub port: u16,
    /// Protocol (`HTTP`).
    pub protocol: String,
    /// Last reported load, 0–[`MAX_LOAD`].
    pub load: u32,
    /// Last reported status.
    pub status: NodeStatus,
    /// When the last heartbeat arrived (Unix ms).
    pub last_heartbeat_ms: u64,
    /// Heartbeat seen within three intervals and status online.
    pub online: bool,
}

/// `GET /v1/cluster/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeList {
    /// Every node that ever reported, online or not.
    pub nodes: Vec<NodeView>,
}

/// InLong Manager's response envelope: `{"success", "errMsg", "data"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlongResponse<T> {
    /// Whether the call succeeded.
    pub success: bool,
    /// What went wrong, or null.
    pub err_msg: Option<String>,
    /// The payload, or null on failure.
    pub data: Option<T>,
}

/// `getIpList`'s data: the cluster and its online nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpList {
    /// Always 1: one cluster per manager.
    pub cluster_id: u32,
    /// 1: the addresses are the ones nodes advertise.
    pub is_intranet: u32,
    /// 0: no switch in progress.
    pub is_switch: u32,
    /// Mean load of the online nodes.
    pub load: u32,
    /// Largest request body a node accepts, in bytes.
    pub max_packet_length: u64,
    /// The online nodes.
    pub node_list: Vec<IpListNode>,
}

/// One node of `getIpList`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpListNode {
    /// The node's id.
    pub id: u32,
    /// Address to dial.
    pub ip: String,
    /// Port to dial.
    pub port: u16,
    /// `HTTP`.
    pub protocol_type: String,
    /// The node's load, 0–200.
    pub node_load: u32,
}

/// InLong's `HeartbeatMsg` as DataProxy sends it (fields intake does not use
/// are accepted and ignored). `ip` and `port` may list several addresses
/// separated by commas.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InlongHeartbeatMsg {
    /// Component address(es).
    pub ip: String,
    /// Component port(s), as text.
    pub port: String,
    /// `HTTP`, `TCP`, ...
    pub protocol_type: Option<String>,
    /// `DataProxy`, `Agent`, ...
    pub component_type: Option<String>,
    /// `OK` when serving.
    pub node_srv_status: Option<String>,
    /// Load; InLong's default 65535 means "unknown" and counts as full.
    pub load: Option<i64>,
    /// When the component sent it.
    pub report_time: Option<i64>,
}
