//! The transport: endpoints (plaintext h2c or TLS with the webpki roots), connecting with a
//! timeout, per-service clients with the message size limit, and how transport failures become
//! [`CloudError`]s that name the endpoint.

use super::ClientOptions;
use crate::cloud::{CloudError, Code};
use crate::proto::viam::app::v1::app_service_client::AppServiceClient;
use crate::proto::viam::app::v1::robot_service_client::RobotServiceClient;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Largest message the client sends or accepts (part configs can be large).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// RPC name used for connection set-up errors.
const CONNECT: &str = "Connect";

const ENDPOINT_FORMS: &str = "expected http://HOST:PORT (plaintext) or https://HOST[:PORT] (TLS)";

/// Parses an endpoint; returns the URI and, for `https`, the TLS server name.
pub(super) fn parse_endpoint(endpoint: &str) -> Result<(Uri, Option<String>), CloudError> {
    let invalid = |why: &str| {
        CloudError::new(
            CONNECT,
            Code::InvalidArgument,
            format!("invalid endpoint {endpoint:?}: {why}; {ENDPOINT_FORMS}"),
        )
    };
    let uri: Uri = endpoint.parse().map_err(|_| invalid("not a URL"))?;
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("a path or query is not allowed"));
    }
    let tls_domain = match uri.scheme_str() {
        Some("http") => None,
        Some("https") => Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        ),
        Some(other) => return Err(invalid(&format!("unsupported scheme {other:?}"))),
        None => return Err(invalid("no scheme")),
    };
    Ok((uri, tls_domain))
}

pub(super) fn build_endpoint(opts: &ClientOptions) -> Result<Endpoint, CloudError> {
    let (uri, tls_domain) = parse_endpoint(&opts.endpoint)?;
    let setup_error = |e: tonic::transport::Error| {
        connect_error(&opts.endpoint, Code::InvalidArgument, &error_chain(&e))
    };
    let mut endpoint = Endpoint::from(uri)
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("fleetform/", env!("CARGO_PKG_VERSION")))
        .map_err(setup_error)?;
    if let Some(domain) = tls_domain {
        let tls = ClientTlsConfig::new()
            .with_webpki_roots()
            .domain_name(domain);
        endpoint = endpoint.tls_config(tls).map_err(setup_error)?;
    }
    Ok(endpoint)
}

pub(super) fn connect_error(endpoint: &str, code: Code, detail: &str) -> CloudError {
    CloudError::new(
        CONNECT,
        code,
        format!("cannot connect to {endpoint}: {detail}"),
    )
}

/// An error and its sources, joined with `": "` (skipping sources already in the text).
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    append_sources(&mut text, err.source());
    text
}

fn append_sources(text: &mut String, mut source: Option<&dyn std::error::Error>) {
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
}

/// A status as a [`CloudError`]. A status that carries a local error source (connection
/// refused, reset, TLS, …) rather than a code from the server is classified as `Transport`
/// when its code says nothing more specific, and its message gets the causes appended.
pub(super) fn status_error(rpc: &'static str, status: &tonic::Status) -> CloudError {
    let mut err = CloudError::from_status(rpc, status);
    let source = std::error::Error::source(status);
    if source.is_some() {
        append_sources(&mut err.message, source);
        if err.code == Code::Other {
            err.code = Code::Transport;
        }
    }
    err
}

pub(super) fn app(channel: Channel) -> AppServiceClient<Channel> {
    AppServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// One unary call of AppService `method` (path `/viam.app.v1.AppService/<method>`) whose answer
/// is decoded as `Resp` instead of the generated message: a message with the same tags that
/// reads less (see `convert::GetRobotPartsReply`). Same message size limits as [`app`].
pub(super) async fn app_unary<Req, Resp>(
    channel: Channel,
    path: &'static str,
    method: &'static str,
    request: tonic::Request<Req>,
) -> Result<tonic::Response<Resp>, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    app_call(channel, path, method, request, codec).await
}

/// One unary call of AppService `method` whose request and answer are encoded protobuf
/// messages, passed through as bytes: how a registered kind's own RPCs travel
/// ([`CloudApi::call_app`](crate::cloud::CloudApi::call_app)). Same message size limits as
/// [`app`].
pub(super) async fn app_bytes(
    channel: Channel,
    method: &'static str,
    request: tonic::Request<Vec<u8>>,
) -> Result<tonic::Response<Vec<u8>>, tonic::Status> {
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(format!(
        "/viam.app.v1.AppService/{method}"
    ))
    .map_err(|e| tonic::Status::invalid_argument(format!("RPC name {method:?}: {e}")))?;
    app_call(channel, path, method, request, BytesCodec).await
}

/// One unary AppService call at `path` with `codec`, with the size limits of [`app`].
async fn app_call<C>(
    channel: Channel,
    path: tonic::codegen::http::uri::PathAndQuery,
    method: &'static str,
    mut request: tonic::Request<C::Encode>,
    codec: C,
) -> Result<tonic::Response<C::Decode>, tonic::Status>
where
    C: tonic::codec::Codec,
    C::Encode: Send + Sync + 'static,
    C::Decode: Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {e}")))?;
    request
        .extensions_mut()
        .insert(tonic::GrpcMethod::new("viam.app.v1.AppService", method));
    grpc.unary(request, path, codec).await
}

/// A gRPC codec for messages already encoded: the bytes go out and come back as they are.
#[derive(Clone, Copy, Debug, Default)]
struct BytesCodec;

impl tonic::codec::Codec for BytesCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;

    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl tonic::codec::Encoder for BytesCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for BytesCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use prost::bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

pub(super) fn robot(channel: Channel) -> RobotServiceClient<Channel> {
    RobotServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}
