//! The manager's faces through the router: InLong's getIpList and heartbeat
//! report, and the native heartbeat and node list, with the literal JSON
//! InLong SDKs parse.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod fixture;

use std::sync::Arc;

use fixture::TestNode;
use intake_core::NodeRegistry;
use intake_server::Limits;
use serde_json::json;

async fn manager() -> TestNode {
    let mut node = TestNode::new(Limits::default()).await;
    node.state = node
        .state
        .clone()
        .with_manager(Arc::new(NodeRegistry::new(5_000)));
    node.create(
        json!({"name": "events", "bindings": {"inlong": [{"group_id": "g1", "stream_id": "s1"}]}}),
    )
    .await;
    node
}

const IP_LIST: &str = "/inlong/manager/openapi/dataproxy/getIpList/g1";

#[tokio::test]
async fn get_ip_list_lists_online_nodes_in_inlongs_shape() {
    let node = manager().await;
    let (status, _, body) = node.get(IP_LIST).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"success": true, "errMsg": null, "data": {"clusterId": 1, "isIntranet": 1, "isSwitch": 0,
               "load": 0, "maxPacketLength": 8_388_608, "nodeList": []}})
    );
    for (port, load) in [(46802, 20), (46803, 60)] {
        let (status, _, body) = node
            .post(
                "/v1/cluster/heartbeat",
                Some("application/json"),
                json!({"ip": "10.0.0.1", "port": port, "protocol": "HTTP", "load": load})
                    .to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = node
        .post(
            "/inlong/manager/openapi/heartbeat/report",
            Some("application/json"),
            json!({"ip": "10.0.0.9", "port": "46802", "protocolType": "TCP", "componentType": "DATAPROXY",
                   "nodeSrvStatus": "OK", "load": 10, "reportTime": 1, "clusterName": "default"})
            .to_string(),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"success": true, "errMsg": null, "data": true}))
    );

    let (_, _, body) = node
        .post(&format!("{IP_LIST}?protocolType=HTTP"), None, "")
        .await;
    assert_eq!(
        body,
        json!({"success": true, "errMsg": null, "data": {"clusterId": 1, "isIntranet": 1, "isSwitch": 0,
               "load": 40, "maxPacketLength": 8_388_608, "nodeList": [
                   {"id": 1, "ip": "10.0.0.1", "port": 46802, "protocolType": "HTTP", "nodeLoad": 20},
                   {"id": 2, "ip": "10.0.0.1", "port": 46803, "protocolType": "HTTP", "nodeLoad": 60}]}})
    );
    // The form body's protocolType wins over the query's.
    let (_, _, body) = node
        .post(
            &format!("{IP_LIST}?protocolType=HTTP"),
            Some("application/x-www-form-urlencoded"),
            "protocolType=TCP",
        )
        .await;
    assert_eq!(
        body["data"]["nodeList"],
        json!([{"id": 3, "ip": "10.0.0.9", "port": 46802, "protocolType": "TCP", "nodeLoad": 10}])
    );

    let (_, _, body) = node.get("/v1/cluster/nodes").await;
    assert_eq!(body["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(body["nodes"][0]["online"], true);
}

#[tokio::test]
async fn unknown_group_and_bad_heartbeats_answer_success_false() {
    let node = manager().await;
    let (status, _, body) = node
        .get("/inlong/manager/openapi/dataproxy/getIpList/nope")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"success": false, "errMsg": "inlong group \"nope\" is not configured: no stream is bound to it", "data": null})
    );
    let (status, _, body) = node
        .post(
            "/inlong/manager/openapi/heartbeat/report",
            Some("application/json"),
            r#"{"ip":"h","port":"x"}"#,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"success": false, "errMsg": "invalid HeartbeatMsg: port \"x\" is not a port number", "data": null})
    );
    let (_, _, body) = node
        .post(
            "/inlong/manager/openapi/heartbeat/report",
            Some("text/plain"),
            "{}",
        )
        .await;
    assert_eq!(body["success"], false);
    let (status, _, body) = node
        .post(
            "/v1/cluster/heartbeat",
            Some("application/json"),
            r#"{"ip":"","port":1,"protocol":"HTTP","load":0}"#,
        )
        .await;
    assert_eq!((status, fixture::code(&body)), (400, "bad_request"));
}

#[tokio::test]
async fn a_plain_node_serves_no_manager_routes() {
    let node = TestNode::new(Limits::default()).await;
    let (status, _, body) = node.get(IP_LIST).await;
    assert_eq!((status, body["success"].clone()), (200, json!(false)));
    let (status, _, _) = node.get("/v1/cluster/nodes").await;
    assert_eq!(status, 404);
}
