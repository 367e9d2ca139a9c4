//! AWS SDK errors as [`CloudError`]s, and the retry policy of every client.

use crate::cloud::{CloudError, ErrorKind};
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// The retry policy of every client: standard mode (throttling, 5xx and
/// transient errors), 5 attempts, exponential backoff from 200 ms.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(5)
        .with_initial_backoff(Duration::from_millis(200))
}

/// `(code, message)` from an XML error body the SDK could not parse (moto
/// answers auth failures in EC2's `<Errors><Error>` shape for every service).
pub(super) fn xml_error(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let tag = |name: &str| {
        let start = text.find(&format!("<{name}>"))? + name.len() + 2;
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].to_string())
    };
    Some((tag("Code")?, tag("Message").unwrap_or_default()))
}

/// An error answer without an AWS error code: the code from an XML body,
/// else its HTTP status (a proxy, a wrong endpoint, an emulator that lacks
/// the protocol).
fn uncoded(raw: &aws_sdk_ec2::config::http::HttpResponse) -> CloudError {
    match raw.body().bytes().and_then(xml_error) {
        Some((code, message)) => CloudError::from_code(Some(&code), message),
        None => CloudError::new(
            ErrorKind::Other,
            format!(
                "HTTP {} without an AWS error in the answer",
                raw.status().as_u16()
            ),
        ),
    }
}

/// `e`, as an AWS server error (passing: see [`CloudError::transient`]) when
/// the answer was a 5xx that no known code names.
fn server_side(mut e: CloudError, raw: &aws_sdk_ec2::config::http::HttpResponse) -> CloudError {
    if e.kind == ErrorKind::Other && raw.status().is_server_error() {
        e.kind = ErrorKind::Unavailable;
    }
    e
}

/// Maps an SDK error to a [`CloudError`], keeping the AWS error code.
pub(crate) fn aws_err<E>(e: SdkError<E, aws_sdk_ec2::config::http::HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            let text = DisplayErrorContext(&e).to_string();
            let kind = if text.contains("credentials") {
                ErrorKind::Credentials
            } else {
                ErrorKind::Network
            };
            CloudError::new(kind, text)
        }
        SdkError::ServiceError(se) if e.code().is_none() => {
            server_side(uncoded(se.raw()), se.raw())
        }
        SdkError::ResponseError(re) if !re.raw().status().is_success() => {
            server_side(uncoded(re.raw()), re.raw())
        }
        SdkError::ServiceError(se) => server_side(
            CloudError::from_code(
                e.code(),
                e.message()
                    .map(String::from)
                    .unwrap_or_else(|| DisplayErrorContext(&e).to_string()),
            ),
            se.raw(),
        ),
        _ => {
            let text = DisplayErrorContext(&e).to_string();
            let kind = if text.contains("credentials") {
                ErrorKind::Credentials
            } else {
                ErrorKind::Other
            };
            CloudError::new(kind, text)
        }
    }
}

/// "`what` not found".
pub(crate) fn not_found(what: String) -> CloudError {
    CloudError::new(ErrorKind::NotFound, format!("{what} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::ecs::aws as ecs;
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_ecs::operation::update_service::{UpdateServiceError, UpdateServiceOutput};
    use aws_smithy_mocks::{mock, MockResponseInterceptor, Rule, RuleMode};

    #[test]
    fn an_unparsed_xml_error_body_still_gives_the_code() {
        let body = br#"<?xml version="1.0"?><ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></Errors></ErrorResponse>"#;
        assert_eq!(
            xml_error(body),
            Some((
                "InvalidClientTokenId".into(),
                "The security token included in the request is invalid.".into()
            ))
        );
        assert_eq!(xml_error(b"<html>nope</html>"), None);
    }

    fn ecs_client(rule: &Rule) -> aws_sdk_ecs::Client {
        let conf = aws_sdk_ecs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ecs::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                MockResponseInterceptor::new()
                    .rule_mode(RuleMode::Sequential)
                    .with_rule(rule),
            )
            .retry_config(retry_config().with_initial_backoff(Duration::from_millis(1)))
            .build();
        aws_sdk_ecs::Client::from_conf(conf)
    }

    fn service_error(code: &str) -> UpdateServiceError {
        UpdateServiceError::generic(
            aws_sdk_ecs::error::ErrorMetadata::builder()
                .code(code)
                .message("from the mock")
                .build(),
        )
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_succeeds() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"slow down"}"#.into()),
            )
            .times(2)
            .output(|| UpdateServiceOutput::builder().build())
            .build();
        let client = ecs_client(&rule);
        ecs::set_desired(&client, "c", "s", 3).await.unwrap();
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn access_denied_is_surfaced_with_its_code_and_not_retried() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .then_error(|| service_error("AccessDeniedException"));
        let client = ecs_client(&rule);
        let err = ecs::set_desired(&client, "c", "s", 3).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::AccessDenied);
        assert_eq!(err.code.as_deref(), Some("AccessDeniedException"));
        assert!(
            err.to_string().starts_with("AccessDeniedException: "),
            "{err}"
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn persistent_throttling_gives_up_with_the_throttling_code() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(
                400,
                Some(r#"{"__type":"ThrottlingException","message":"slow down"}"#.into()),
            )
            .times(10)
            .build();
        let client = ecs_client(&rule);
        let err = ecs::set_desired(&client, "c", "s", 3).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled, "{err:?}");
        assert_eq!(rule.num_calls(), 5);
    }

    #[tokio::test]
    async fn a_server_error_after_the_sdk_retries_is_transient() {
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(503, Some("{}".into()))
            .times(10)
            .build();
        let client = ecs_client(&rule);
        let err = ecs::set_desired(&client, "c", "s", 3).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err:?}");
        assert_eq!(
            err.transient(),
            Some(crate::core::policy::retry::Cause::Unavailable)
        );
        assert_eq!(rule.num_calls(), 5, "retried by the SDK first");
    }

    #[tokio::test]
    async fn an_answer_that_is_no_aws_error_is_named_by_its_status() {
        // As moto answers CloudWatch's CBOR protocol, which it lacks.
        let rule = mock!(aws_sdk_ecs::Client::update_service)
            .sequence()
            .http_status(404, Some("{}".into()))
            .build();
        let client = ecs_client(&rule);
        let err = ecs::set_desired(&client, "c", "s", 3).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other);
        assert_eq!(
            err.to_string(),
            "HTTP 404 without an AWS error in the answer"
        );
        assert_eq!(rule.num_calls(), 1, "not retried");
    }
}
