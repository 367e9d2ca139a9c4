//! A small SigV4-signed transport for the services cloudnap calls without an
//! SDK crate of theirs (SageMaker, Redshift, WorkSpaces: their crates would
//! add minutes to every cold build for four operations each). It takes what
//! the SDK clients take from the [`aws_config::SdkConfig`] (credentials,
//! region, endpoint override) and the same rustls/*ring* HTTPS connector, and
//! speaks two protocols: awsJson1_1 ([`Signed::json`]) and the Query protocol
//! with XML answers ([`Signed::query`]). Throttling, server errors and
//! network failures are retried like the SDK clients' ([`super::error::retry_config`]).

use super::error::xml_error;
use crate::cloud::{CloudError, ErrorKind};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How many times a call is tried (as the SDK clients' retry policy).
const ATTEMPTS: u32 = 5;
/// The first pause between tries; it doubles each time.
const BACKOFF: Duration = Duration::from_millis(200);
/// The limit of one try.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a service is reached and spoken to.
#[derive(Debug)]
pub struct Service {
    /// The SigV4 signing name (`sagemaker`).
    pub signing_name: &'static str,
    /// The host's first labels before `.<region>.amazonaws.com` (`api.sagemaker`).
    pub host_prefix: &'static str,
    pub protocol: Protocol,
}

/// The wire protocol of a [`Service`].
#[derive(Debug)]
pub enum Protocol {
    /// awsJson1_1: a JSON body, the operation in `X-Amz-Target: <prefix>.<Op>`.
    Json { target_prefix: &'static str },
    /// The Query protocol: `Action=<Op>&Version=<version>&...` form-encoded,
    /// XML answers.
    Query { version: &'static str },
}

/// Amazon SageMaker.
pub const SAGEMAKER: Service = Service {
    signing_name: "sagemaker",
    host_prefix: "api.sagemaker",
    protocol: Protocol::Json {
        target_prefix: "SageMaker",
    },
};

/// Amazon Redshift (provisioned clusters).
pub const REDSHIFT: Service = Service {
    signing_name: "redshift",
    host_prefix: "redshift",
    protocol: Protocol::Query {
        version: "2012-12-01",
    },
};

/// Amazon WorkSpaces (personal WorkSpaces).
pub const WORKSPACES: Service = Service {
    signing_name: "workspaces",
    host_prefix: "workspaces",
    protocol: Protocol::Json {
        target_prefix: "WorkspacesService",
    },
};

/// Why a signed call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignedError {
    /// No credentials could be had from the configured chain.
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    /// The request could not be made or signed.
    #[error("could not make the request: {0}")]
    Request(String),
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("no answer from {host}: {why}")]
    Network { host: String, why: String },
    /// AWS answered with an error code.
    #[error("{code}: {message}")]
    Service {
        status: u16,
        code: String,
        message: String,
    },
    /// An error answer without an AWS error code.
    #[error("HTTP {0} without an AWS error in the answer")]
    Uncoded(u16),
    /// A success answer that could not be read.
    #[error("unreadable answer: {0}")]
    Unreadable(String),
}

impl SignedError {
    /// Whether trying again soon may succeed: throttling, a 5xx, no answer.
    fn retryable(&self) -> bool {
        match self {
            SignedError::Network { .. } => true,
            SignedError::Service { status, code, .. } => {
                *status >= 500 || CloudError::from_code(Some(code), "").kind == ErrorKind::Throttled
            }
            SignedError::Uncoded(status) => *status >= 500,
            _ => false,
        }
    }
}

impl From<SignedError> for CloudError {
    fn from(e: SignedError) -> Self {
        match e {
            SignedError::Service {
                status,
                code,
                message,
            } => {
                let mut err = CloudError::from_code(Some(&code), message);
                if err.kind == ErrorKind::Other && status >= 500 {
                    err.kind = ErrorKind::Unavailable;
                }
                err
            }
            SignedError::Uncoded(status) if status >= 500 => {
                CloudError::new(ErrorKind::Unavailable, e.to_string())
            }
            SignedError::Credentials(_) => CloudError::new(ErrorKind::Credentials, e.to_string()),
            SignedError::Network { .. } => CloudError::new(ErrorKind::Network, e.to_string()),
            _ => CloudError::new(ErrorKind::Other, e.to_string()),
        }
    }
}

/// Signed calls for one region and profile, from an SDK configuration.
#[derive(Clone)]
pub struct Signed {
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    endpoint_url: Option<String>,
    connector: Arc<dyn HttpConnector>,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signed")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

impl Signed {
    /// Calls with the credentials, region and endpoint override of `conf`.
    pub fn new(conf: &aws_config::SdkConfig) -> Self {
        let connector = aws_smithy_http_client::Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build();
        Signed {
            credentials: conf.credentials_provider(),
            region: conf.region().map(|r| r.to_string()).unwrap_or_default(),
            endpoint_url: conf.endpoint_url().map(String::from),
            connector: Arc::new(connector),
        }
    }

    /// awsJson1_1 operation `op` of `service` with `input`: its JSON answer.
    pub async fn json(
        &self,
        service: &Service,
        op: &str,
        input: &Value,
    ) -> Result<Value, CloudError> {
        let Protocol::Json { target_prefix } = service.protocol else {
            return Err(SignedError::Request(format!("{op} is not a JSON operation")).into());
        };
        let target = format!("{target_prefix}.{op}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let body = input.to_string().into_bytes();
        let answer = self.call(service, &headers, body).await?;
        if answer.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&answer)
            .map_err(|e| SignedError::Unreadable(format!("{op}: {e}")).into())
    }

    /// Every page of awsJson1_1 operation `op`'s `key` list, following `NextToken`.
    pub async fn json_pages(
        &self,
        service: &Service,
        op: &str,
        input: Value,
        key: &str,
    ) -> Result<Vec<Value>, CloudError> {
        let mut all = Vec::new();
        let mut input = input;
        loop {
            let out = self.json(service, op, &input).await?;
            all.extend(out[key].as_array().cloned().unwrap_or_default());
            match out["NextToken"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => input["NextToken"] = token.into(),
                None => return Ok(all),
            }
        }
    }

    /// Query-protocol action `action` of `service` with `params`: the XML answer.
    pub async fn query(
        &self,
        service: &Service,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, CloudError> {
        let Protocol::Query { version } = service.protocol else {
            return Err(SignedError::Request(format!("{action} is not a Query action")).into());
        };
        // The serializer is not `Send`: finished before any await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action)
                .append_pair("Version", version);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish().into_bytes()
        };
        let headers = [(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )];
        let answer = self.call(service, &headers, body).await?;
        String::from_utf8(answer).map_err(|e| SignedError::Unreadable(e.to_string()).into())
    }

    /// The endpoint of `service`: the override, else its regional one.
    fn endpoint(&self, service: &Service) -> String {
        match &self.endpoint_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!(
                "https://{}.{}.amazonaws.com",
                service.host_prefix, self.region
            ),
        }
    }

    /// POSTs `body`, signed, trying again while the failure passes.
    async fn call(
        &self,
        service: &Service,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Vec<u8>, SignedError> {
        let mut pause = BACKOFF;
        let mut attempt = 1;
        loop {
            let result =
                match tokio::time::timeout(ATTEMPT_TIMEOUT, self.once(service, headers, &body))
                    .await
                {
                    Ok(result) => result,
                    Err(_) => Err(SignedError::Network {
                        host: self.endpoint(service),
                        why: format!("no answer in {ATTEMPT_TIMEOUT:?}"),
                    }),
                };
            match result {
                Err(e) if e.retryable() && attempt < ATTEMPTS => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    /// One signed POST and its answer's body (an error for a non-2xx).
    async fn once(
        &self,
        service: &Service,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<u8>, SignedError> {
        let request = self.signed_request(service, headers, body).await?;
        let host = self.endpoint(service);
        let response = self
            .connector
            .call(request)
            .await
            .map_err(|e| SignedError::Network {
                host: host.clone(),
                why: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            })?;
        let status = response.status().as_u16();
        let bytes = ByteStream::new(response.into_body())
            .collect()
            .await
            .map_err(|e| SignedError::Network {
                host,
                why: e.to_string(),
            })?
            .into_bytes()
            .to_vec();
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Err(error_of(status, &bytes))
        }
    }

    /// The request with its SigV4 headers.
    async fn signed_request(
        &self,
        service: &Service,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpRequest, SignedError> {
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| SignedError::Credentials("none configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| SignedError::Credentials(e.to_string()))?;
        let identity = Identity::from(credentials);
        let uri = format!("{}/", self.endpoint(service));
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignedError::Request(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            uri.as_str(),
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignedError::Request(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SignedError::Request(e.to_string()))?
            .into_parts();
        let mut request = HttpRequest::new(SdkBody::from(body.to_vec()));
        request
            .set_method("POST")
            .and_then(|_| request.set_uri(uri.as_str()))
            .map_err(|e| SignedError::Request(e.to_string()))?;
        let signing = instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()));
        let all = headers.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        for (k, v) in all.chain(signing.collect::<Vec<_>>()) {
            request.headers_mut().insert(k, v);
        }
        Ok(request)
    }
}

/// The string `key` of a JSON answer's object `v` (empty if it has none).
pub fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// The error of a non-2xx answer: its code from a JSON `__type` (or the
/// `x-amzn-ErrorType` shape `Code:more`, `ns#Code`) or an XML `<Code>`.
fn error_of(status: u16, body: &[u8]) -> SignedError {
    let json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let code = v["__type"].as_str().or(v["code"].as_str())?;
        let code = code.rsplit('#').next().unwrap_or(code);
        let code = code.split(':').next().unwrap_or(code).to_string();
        let message = v["message"].as_str().or(v["Message"].as_str());
        Some((code, message.unwrap_or_default().to_string()))
    });
    match json.or_else(|| xml_error(body)) {
        Some((code, message)) => SignedError::Service {
            status,
            code,
            message,
        },
        None => SignedError::Uncoded(status),
    }
}

#[cfg(test)]
mod tests;
