//! TLS on the listeners, end to end with the real binary and certificates
//! made for the test (rcgen): HTTPS with HTTP/2 or HTTP/1.1 by ALPN, plain
//! HTTP and untrusting clients refused, eKuiper's `[httpServerTls]` names,
//! client certificates (mTLS), and certificate problems stopping the start
//! with the file named.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a panic in a test is a failed test"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::{Value, json};
use support::Intake;

/// A CA and what it signed, written as PEM files in a directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "intake test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
            ca_key,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `names` with `usage`, signed by the CA (or by
    /// itself when `forged`); returns (cert PEM, key PEM), also written as
    /// `NAME.pem` and `NAME.key`.
    fn issue(
        &self,
        file: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        forged: bool,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![usage];
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let cert = if forged {
            params.self_signed(&key).unwrap()
        } else {
            params.signed_by(&key, &self.ca, &self.ca_key).unwrap()
        };
        let (cert, key) = (cert.pem(), key.serialize_pem());
        std::fs::write(self.path(&format!("{file}.pem")), &cert).unwrap();
        std::fs::write(self.path(&format!("{file}.key")), &key).unwrap();
        (cert, key)
    }

    fn ca_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap()
    }
}

fn config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("intake.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn https(node: &Intake, path: &str) -> String {
    format!("https://{}{path}", node.addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_http2_by_alpn_and_plain_http_refused() {
    let pki = Pki::new();
    pki.issue(
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let data = tempfile::tempdir().unwrap();
    let config = config_file(
        data.path(),
        &format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            pki.path("server.pem"),
            pki.path("server.key")
        ),
    );
    let node = Intake::serve(
        &data.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );

    let client = reqwest::Client::builder()
        .add_root_certificate(pki.ca_certificate())
        .build()
        .unwrap();
    let r = client
        .post(https(&node, "/v1/streams"))
        .json(&json!({"name": "secure"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    let r = client
        .post(https(&node, "/v1/streams/secure/records"))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["records"], 1, "{body}");

    let http1 = reqwest::Client::builder()
        .add_root_certificate(pki.ca_certificate())
        .http1_only()
        .build()
        .unwrap();
    let r = http1.get(https(&node, "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // Plain HTTP to the TLS port, and a client that does not trust the CA.
    let plain = reqwest::Client::new()
        .get(node.url("/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    let untrusting = reqwest::Client::new()
        .get(https(&node, "/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err(), "a client without the CA connected");

    // The CLI speaks HTTPS too, trusting the CA through SSL_CERT_FILE.
    let out = Command::new(env!("CARGO_BIN_EXE_intake"))
        .args(["stream", "list", "--url", &https(&node, "")])
        .env("SSL_CERT_FILE", pki.path("ca.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("secure"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ekuiper_names_and_client_certificates() {
    let pki = Pki::new();
    pki.issue(
        "server",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    let (device_cert, device_key) = pki.issue(
        "device",
        &["device-1"],
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    let (forged_cert, forged_key) = pki.issue(
        "forged",
        &["device-2"],
        ExtendedKeyUsagePurpose::ClientAuth,
        true,
    );
    let data = tempfile::tempdir().unwrap();
    let push_port = support::free_port();
    let config = config_file(
        data.path(),
        &format!(
            "push_listen = \"127.0.0.1:{push_port}\"\n\
             [httpServerTls]\ncertfile = {:?}\nkeyfile = {:?}\nclient_ca_file = {:?}\n\
             [[streams]]\nname = \"sensors\"\n\
             bindings = {{ datasource = {{ path = \"/api/data\", method = \"POST\" }} }}\n",
            pki.path("server.pem"),
            pki.path("server.key"),
            pki.path("ca.pem")
        ),
    );
    let node = Intake::serve(
        &data.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let client_with = |identity: Option<(&str, &str)>| {
        let mut builder = reqwest::Client::builder().add_root_certificate(pki.ca_certificate());
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}{key}");
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    };
    let push_url = format!("https://127.0.0.1:{push_port}/api/data");

    // No certificate, or one the CA did not sign: no connection.
    for (who, client) in [
        ("anonymous", client_with(None)),
        ("forged", client_with(Some((&forged_cert, &forged_key)))),
    ] {
        let r = client.get(https(&node, "/healthz")).send().await;
        assert!(r.is_err(), "{who} client connected: {r:?}");
        let r = client.post(&push_url).body("{}").send().await;
        assert!(r.is_err(), "{who} client reached the push listener: {r:?}");
    }

    // A device with a certificate from the CA pushes on both listeners.
    let device = client_with(Some((&device_cert, &device_key)));
    let r = device.get(https(&node, "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = device
        .post(&push_url)
        .body(r#"{"temp": 21.5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    let view: Value = device
        .get(https(&node, "/v1/streams/sensors"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"][0]["next_offset"], 1, "{view}");
}

#[test]
fn certificate_problems_stop_the_start_naming_the_file() {
    let pki = Pki::new();
    pki.issue(
        "server",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    pki.issue(
        "other",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        false,
    );
    std::fs::write(pki.path("garbage.pem"), "this is not PEM\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let cases = [
        (
            pki.path("missing.pem"),
            pki.path("server.key"),
            "missing.pem",
        ),
        (
            pki.path("garbage.pem"),
            pki.path("server.key"),
            "garbage.pem",
        ),
        (
            pki.path("server.pem"),
            pki.path("garbage.pem"),
            "garbage.pem",
        ),
        // No key in the file, and a key that is not the certificate's.
        (pki.path("server.pem"), pki.path("ca.pem"), "ca.pem"),
        (pki.path("server.pem"), pki.path("other.key"), "other.key"),
    ];
    for (cert, key, named) in cases {
        let config = config_file(
            data.path(),
            &format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
        );
        let out = Command::new(env!("CARGO_BIN_EXE_intake"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {cert:?} {key:?}");
        assert!(
            stderr.contains("cannot set up TLS") && stderr.contains(named),
            "{named}: {stderr}"
        );
    }
}
