//! The InLong Manager face, served by a manager: node discovery for InLong
//! SDKs and heartbeats from InLong components.
//!
//! - `GET` or `POST /inlong/manager/openapi/dataproxy/getIpList/{inlongGroupId}`
//!   (`protocolType` from the query or a form body, optional) answers the
//!   online nodes: `{"success":true,"errMsg":null,"data":{"clusterId":1,
//!   "isIntranet":1,"isSwitch":0,"load":L,"maxPacketLength":N,"nodeList":
//!   [{"id":1,"ip":"...","port":46802,"protocolType":"HTTP","nodeLoad":L}]}}`.
//!   A group no stream is bound to answers `success: false` with `errMsg`.
//! - `POST /inlong/manager/openapi/heartbeat/report` takes DataProxy's
//!   `HeartbeatMsg` JSON and answers `{"success":true,"errMsg":null,"data":true}`.
//!
//! Every answer, errors included, is HTTP 200 in that envelope, as InLong's
//! Manager answers.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use intake_format::cluster::{
    Heartbeat, InlongHeartbeatMsg, InlongResponse, IpList, IpListNode, MAX_LOAD, NodeStatus,
};
use serde::Serialize;

use crate::cluster::{manager, now_ms};
use crate::error::ApiError;
use crate::extract::{is_json, media_type_is, read_body};
use crate::state::AppState;

/// Path prefix of this face.
pub(crate) const PREFIX: &str = "/inlong/manager/";

/// The face's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/inlong/manager/openapi/dataproxy/getIpList/{group_id}",
            get(get_ip_list).post(get_ip_list),
        )
        .route(
            "/inlong/manager/openapi/heartbeat/report",
            post(report_heartbeat),
        )
}

/// Renders an error in InLong Manager's envelope.
pub(crate) fn render(err: ApiError) -> Response {
    err.log();
    let body = InlongResponse::<()> {
        success: false,
        err_msg: Some(err.public_message()),
        data: None,
    };
    err.with_retry_after(Json(body).into_response())
}

fn ok<T: Serialize>(data: T) -> Response {
    Json(InlongResponse {
        success: true,
        err_msg: None,
        data: Some(data),
    })
    .into_response()
}

/// `protocolType` from a form body (which wins) or the query.
fn protocol_type(query: &[(String, String)], headers: &HeaderMap, body: &Bytes) -> Option<String> {
    let from_form = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|ct| ct.to_str().ok())
        .filter(|ct| media_type_is(ct, &["application/x-www-form-urlencoded"]))
        .and_then(|_| {
            form_urlencoded::parse(body)
                .find(|(k, _)| k == "protocolType")
                .map(|(_, v)| v.into_owned())
        });
    from_form.or_else(|| {
        query
            .iter()
            .find(|(k, _)| k == "protocolType")
            .map(|(_, v)| v.clone())
    })
}

/// Reads a body of these paths, which are open without a token, within
/// `max_admin_body_bytes` and `request_read_timeout` like every other
/// route's (the router turns off axum's own body limit).
async fn read_open_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    read_body(
        headers,
        body,
        state.limits.max_admin_body_bytes,
        &state.limits,
    )
    .await
}

async fn get_ip_list(
    State(state): State<AppState>,
    Path(group_id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(registry) = manager(&state) else {
        return render(ApiError::RouteNotFound {
            method: "GET".into(),
            path: format!("{PREFIX}openapi/dataproxy/getIpList/{group_id}"),
        });
    };
    let body = match read_open_body(&state, &headers, body).await {
        Ok(body) => body,
        Err(e) => return render(e),
    };
    if !state.node.has_inlong_group(&group_id) {
        return render(ApiError::BadRequest(format!(
            "inlong group {group_id:?} is not configured: no stream is bound to it"
        )));
    }
    let protocol = protocol_type(&query, &headers, &body);
    let nodes: Vec<IpListNode> = registry
        .online(now_ms())
        .into_iter()
        .filter(|n| {
            protocol
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case(&n.protocol))
        })
        .map(|n| IpListNode {
            id: n.id,
            ip: n.ip,
            port: n.port,
            protocol_type: n.protocol,
            node_load: n.load,
        })
        .collect();
    let load = if nodes.is_empty() {
        0
    } else {
        let total: u64 = nodes.iter().map(|n| u64::from(n.node_load)).sum();
        u32::try_from(total / nodes.len() as u64).unwrap_or(MAX_LOAD)
    };
    ok(IpList {
        cluster_id: 1,
        is_intranet: 1,
        is_switch: 0,
        load,
        max_packet_length: state.limits.max_body_bytes as u64,
        node_list: nodes,
    })
}

/// The heartbeats an InLong `HeartbeatMsg` stands for: one per address
/// when `ip` and `port` list several (comma-separated).
pub(crate) fn heartbeats_of(msg: &InlongHeartbeatMsg) -> Result<Vec<Heartbeat>, String> {
    let ips: Vec<&str> = msg
        .ip
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let ports: Vec<&str> = msg
        .port
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if ips.is_empty() || ports.is_empty() {
        return Err("ip and port are required".into());
    }
    if ips.len() != ports.len() && ports.len() != 1 {
        return Err(format!("{} ips but {} ports", ips.len(), ports.len()));
    }
    // InLong's default load 0xffff means "not measured": count it as full.
    let load = match msg.load {
        Some(l) if (0..=i64::from(MAX_LOAD)).contains(&l) => l as u32,
        _ => MAX_LOAD,
    };
    let status = match msg.node_srv_status.as_deref() {
        None | Some("OK") => NodeStatus::Online,
        Some(_) => NodeStatus::Draining,
    };
    ips.iter()
        .enumerate()
        .map(|(i, ip)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or_default();
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("port {port:?} is not a port number"))?;
            Ok(Heartbeat {
                ip: (*ip).to_owned(),
                port,
                protocol: msg.protocol_type.clone().unwrap_or_else(|| "HTTP".into()),
                load,
                status,
            })
        })
        .collect()
}

async fn report_heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(registry) = manager(&state) else {
        return render(ApiError::RouteNotFound {
            method: "POST".into(),
            path: format!("{PREFIX}openapi/heartbeat/report"),
        });
    };
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !is_json(ct) {
            return render(ApiError::UnsupportedMediaType {
                got: ct.to_owned(),
                accepted: "application/json",
            });
        }
    }
    let body = match read_open_body(&state, &headers, body).await {
        Ok(body) => body,
        Err(e) => return render(e),
    };
    if body.len() > state.limits.max_admin_body_bytes {
        return render(ApiError::BadRequest(format!(
            "heartbeat body of {} bytes is over the limit of {}",
            body.len(),
            state.limits.max_admin_body_bytes
        )));
    }
    let msg: InlongHeartbeatMsg = match serde_json::from_slice(&body) {
        Ok(msg) => msg,
        Err(e) => {
            return render(ApiError::BadRequest(format!(
                "invalid HeartbeatMsg JSON: {e}"
            )));
        }
    };
    match heartbeats_of(&msg) {
        Ok(beats) => {
            let now = now_ms();
            for beat in &beats {
                registry.report(beat, now);
            }
            ok(true)
        }
        Err(reason) => render(ApiError::BadRequest(format!(
            "invalid HeartbeatMsg: {reason}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_msg_with_several_addresses() {
        let msg: InlongHeartbeatMsg = serde_json::from_str(
            r#"{"ip":"10.0.0.1,10.0.0.2","port":"46802","protocolType":"HTTP",
                "componentType":"DataProxy","nodeSrvStatus":"OK","load":35,"reportTime":1}"#,
        )
        .unwrap();
        let beats = heartbeats_of(&msg).unwrap();
        assert_eq!(beats.len(), 2);
        assert_eq!(
            (beats[1].ip.as_str(), beats[1].port, beats[1].load),
            ("10.0.0.2", 46802, 35)
        );
        assert_eq!(beats[0].status, NodeStatus::Online);
    }

    #[test]
    fn unmeasured_load_counts_as_full_and_bad_ports_are_refused() {
        let msg = InlongHeartbeatMsg {
            ip: "h".into(),
            port: "1".into(),
            load: Some(0xffff),
            node_srv_status: Some("SERVICE_UNREADY".into()),
            ..InlongHeartbeatMsg::default()
        };
        let beats = heartbeats_of(&msg).unwrap();
        assert_eq!(
            (beats[0].load, beats[0].status),
            (MAX_LOAD, NodeStatus::Draining)
        );
        let bad = InlongHeartbeatMsg {
            port: "http".into(),
            ..msg
        };
        assert!(heartbeats_of(&bad).unwrap_err().contains("not a port"));
        assert!(heartbeats_of(&InlongHeartbeatMsg::default()).is_err());
    }
}
