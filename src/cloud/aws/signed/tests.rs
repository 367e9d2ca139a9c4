//! The transport against a local HTTP server that answers given replies in
//! turn and keeps what it was sent.

use super::*;
use aws_credential_types::Credentials;
use serde_json::json;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server was sent: each request's head (lower-cased) and body.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A server answering `replies` (status, body) in turn, one per connection.
async fn server(replies: Vec<(u16, &'static str)>) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let kept = seen.clone();
    tokio::spawn(async move {
        for (status, body) in replies {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, length) = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                    if buf.len() >= end + 4 + length {
                        break (text[..end].to_string(), end + 4);
                    }
                }
            };
            let sent = String::from_utf8_lossy(&buf[length..]).to_string();
            kept.lock().unwrap().push((head, sent));
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    (url, seen)
}

fn signed(url: &str) -> Signed {
    let conf = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .build();
    Signed::new(&conf)
}

#[tokio::test]
async fn a_json_call_is_signed_for_its_service_and_names_its_operation() {
    let (url, seen) = server(vec![(200, r#"{"NotebookInstanceStatus":"InService"}"#)]).await;
    let input = json!({"NotebookInstanceName": "nb"});
    let out = signed(&url)
        .json(&SAGEMAKER, "DescribeNotebookInstance", &input)
        .await
        .unwrap();
    assert_eq!(out["NotebookInstanceStatus"], "InService");
    let (head, body) = seen.lock().unwrap()[0].clone();
    assert!(head.starts_with("post / http/1.1"), "{head}");
    assert!(
        head.contains("x-amz-target: sagemaker.describenotebookinstance"),
        "{head}"
    );
    assert!(
        head.contains("content-type: application/x-amz-json-1.1"),
        "{head}"
    );
    assert!(
        head.contains("credential=akidtest/") && head.contains("/eu-west-1/sagemaker/aws4_request"),
        "{head}"
    );
    assert!(
        head.contains("signedheaders=content-type;host;x-amz-date;x-amz-target"),
        "{head}"
    );
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), input);
}

#[tokio::test]
async fn a_query_call_is_form_encoded_and_its_error_is_read_from_the_xml() {
    let error = r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClusterState</Code><Message>cannot pause</Message></Error></ErrorResponse>"#;
    let (url, seen) = server(vec![(400, error)]).await;
    let params = [("ClusterIdentifier".to_string(), "a b".to_string())];
    let err = signed(&url)
        .query(&REDSHIFT, "PauseCluster", &params)
        .await
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("InvalidClusterState"));
    assert_eq!(err.message, "cannot pause");
    let (head, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        body,
        "Action=PauseCluster&Version=2012-12-01&ClusterIdentifier=a+b"
    );
    assert!(head.contains("/redshift/aws4_request"), "{head}");
    assert_eq!(seen.lock().unwrap().len(), 1, "not retried");
}

#[tokio::test]
async fn throttling_is_retried_until_it_succeeds() {
    let throttled = r#"{"__type":"ThrottlingException","message":"slow down"}"#;
    let (url, seen) = server(vec![(400, throttled), (400, throttled), (200, "{}")]).await;
    let out = signed(&url)
        .json(&SAGEMAKER, "StopNotebookInstance", &json!({}))
        .await;
    assert_eq!(out, Ok(json!({})));
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn access_denied_is_named_and_not_retried() {
    let denied = r#"{"__type":"com.amazon.coral.service#AccessDeniedException","Message":"no"}"#;
    let (url, seen) = server(vec![(400, denied)]).await;
    let err = signed(&url)
        .json(&SAGEMAKER, "StopNotebookInstance", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied);
    assert_eq!(err.to_string(), "AccessDeniedException: no");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_then_reported_as_passing() {
    let (url, seen) = server(vec![(503, ""); 5]).await;
    let err = signed(&url)
        .json(&SAGEMAKER, "StopNotebookInstance", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
    assert_eq!(
        err.to_string(),
        "HTTP 503 without an AWS error in the answer"
    );
    assert_eq!(seen.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn no_server_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = signed(&url)
        .json(&SAGEMAKER, "StopNotebookInstance", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Network, "{err:?}");
}
