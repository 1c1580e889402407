//! The content service's `Read`, answered without tonic's encoder.
//!
//! A cache import reads every layer through `Read`, a megabyte per call;
//! tonic's generated server copies each response into its encode buffer
//! before h2 sends it (a tenth of the client's CPU on a large import). Here
//! the request is decoded and served by [`ContentService::read`] as usual,
//! and each response is framed by [`crate::session::frame`] with its data
//! passed to h2 as it was read. `Write` goes to [`super::content_write`];
//! every other method to the generated server.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use prost::Message;
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::{Status, Streaming};

use super::content::{BoxStream, ContentService};
use crate::proto::containerd::services::content::v1 as pb;
use crate::proto::containerd::services::content::v1::content_server::{Content, ContentServer};
use crate::session::frame;

const READ_PATH: &str = "/containerd.services.content.v1.Content/Read";
const WRITE_PATH: &str = "/containerd.services.content.v1.Content/Write";

/// The content service's server: `Read` and `Write` by hand, the rest
/// generated.
#[derive(Debug, Clone)]
pub struct ContentRoutes {
    service: ContentService,
    server: ContentServer<ContentService>,
}

impl ContentRoutes {
    pub(crate) fn new(service: ContentService, server: ContentServer<ContentService>) -> Self {
        ContentRoutes { service, server }
    }
}

impl NamedService for ContentRoutes {
    const NAME: &'static str = <ContentServer<ContentService> as NamedService>::NAME;
}

impl tower::Service<http::Request<Body>> for ContentRoutes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<Body>>::poll_ready(&mut self.server, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let service = self.service.clone();
        match request.uri().path() {
            READ_PATH => Box::pin(async move { Ok(read(service, request).await.unwrap_or_else(Status::into_http)) }),
            WRITE_PATH => Box::pin(async move {
                Ok(super::content_write::write(service, request).await.unwrap_or_else(Status::into_http))
            }),
            _ => self.server.call(request),
        }
    }
}

/// Decodes the one request message, runs `read` and frames its responses.
async fn read(service: ContentService, request: http::Request<Body>) -> Result<http::Response<Body>, Status> {
    let (parts, body) = request.into_parts();
    let decoder = tonic_prost::ProstDecoder::<pb::ReadContentRequest>::default();
    let mut messages = Streaming::new_request(decoder, body, None, Some(crate::session::MAX_MESSAGE_SIZE));
    let message = messages.message().await?.ok_or_else(|| Status::invalid_argument("missing request message"))?;
    let request = tonic::Request::from_parts(MetadataMap::from_headers(parts.headers), parts.extensions, message);
    let responses = service.read(request).await?.into_inner();
    Ok(FramedResponses::response(responses, |response| {
        let head = pb::ReadContentResponse { offset: response.offset, data: Bytes::new() }.encode_to_vec();
        // `data` is field 2.
        frame::message(&head, 2, response.data)
    }))
}

/// A hand-served call's response body: each response as `frame` puts it
/// (its gRPC header and fields, then its payload if that goes apart), the
/// call's status in the trailers.
pub(super) struct FramedResponses<T> {
    responses: BoxStream<T>,
    frame: fn(T) -> (Bytes, Option<Bytes>),
    /// The payload whose header went out last.
    payload: Option<Bytes>,
    done: bool,
}

impl<T: Send + 'static> FramedResponses<T> {
    /// The call's response: gRPC's head, then this body.
    pub(super) fn response(responses: BoxStream<T>, frame: fn(T) -> (Bytes, Option<Bytes>)) -> http::Response<Body> {
        let body = FramedResponses { responses, frame, payload: None, done: false };
        let mut response = http::Response::new(Body::new(body));
        response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        response
    }
}

impl<T> http_body::Body for FramedResponses<T> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(payload) = self.payload.take() {
            return Poll::Ready(Some(Ok(Frame::data(payload))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let status = match ready!(self.responses.as_mut().poll_next(cx)) {
            Some(Ok(response)) => {
                let (header, payload) = (self.frame)(response);
                self.payload = payload;
                return Poll::Ready(Some(Ok(Frame::data(header))));
            }
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.done = true;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(status)))))
    }
}

/// The trailers that end a call with `status`.
fn trailers(status: Status) -> http::HeaderMap {
    let mut trailers = http::HeaderMap::new();
    if let Err(unsendable) = status.add_header(&mut trailers) {
        // A message that cannot be a header: its code still can.
        trailers.clear();
        let _ = Status::new(unsendable.code(), "").add_header(&mut trailers);
    }
    trailers
}
