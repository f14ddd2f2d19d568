//! RFC 9112 rules for requests that the linked actix-http (3.11.2,
//! [`crate::http::conn::http1::ACTIX_HTTP`]) does not apply while parsing them, applied by
//! actix-web middleware ([`apply`]) on both paths of a connection alike: requests the front
//! end ([`crate::http::conn`]) hands to actix, and every request when actix has whole
//! connections (`fast_path = false`). The front end frames these requests exactly as actix-http
//! does and never answers them itself ([`crate::http::conn::fastpath::plain`]).
//!
//! - **Faulty framing** ([`faulty_framing`]: `Transfer-Encoding` in HTTP/1.0, beside
//!   `Content-Length`, or other than `chunked`): `400 Bad Request` and the connection closes
//!   (RFC 9112 §6.1, §6.3). actix-http 3.11.2 reads such a request (ignoring the
//!   `Transfer-Encoding` of HTTP/1.0 or `identity`, preferring `chunked` to the length) and
//!   would keep the connection: a proxy in front that framed it otherwise could smuggle a
//!   request in its body (§11.2). Later actix-http versions refuse these heads themselves.
//! - **Host**: an HTTP/1.1 request without exactly one `Host` is answered `400 Bad Request`
//!   (RFC 9112 §3.2).
//! - **`Connection: close`** listed anywhere (RFC 9110 §7.6.1, [`lists_close`]): the response
//!   closes the connection. actix-http 3.11.2 reads only a `Connection` field that is exactly
//!   `close` (the last one); `keep-alive, close` would keep the connection open.
//!
//! Errors a service returns (rather than error responses) pass through unchanged; pkgstash's
//! handlers answer with responses.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use actix_web::http::{ConnectionType, Version};
use actix_web::middleware::Next;
use actix_web::HttpResponse;

use crate::http::conn::http1::{faulty_framing, lists_close};

/// What [`apply`] does to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Faulty framing: 400, then the connection closes.
    FaultyFraming,
    /// HTTP/1.1 without exactly one `Host`: 400.
    Host,
    /// Handled as usual.
    Pass,
}

/// The verdict on a request head, and whether a `Connection` field lists `close`.
pub(crate) fn judge(req: &actix_web::dev::RequestHead) -> (Verdict, bool) {
    let http11 = req.version == Version::HTTP_11;
    let headers = &req.headers;
    let close = headers
        .get_all(CONNECTION)
        .any(|v| lists_close(v.as_bytes()));
    let transfer_encodings: Vec<&[u8]> = headers
        .get_all(TRANSFER_ENCODING)
        .map(|v| v.as_bytes())
        .collect();
    let verdict = if faulty_framing(
        http11,
        &transfer_encodings,
        headers.contains_key(CONTENT_LENGTH),
    ) {
        Verdict::FaultyFraming
    } else if http11 && headers.get_all(HOST).count() != 1 {
        Verdict::Host
    } else {
        Verdict::Pass
    };
    (verdict, close)
}

/// The middleware (`actix_web::middleware::from_fn(apply)`); see the module doc.
pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let (verdict, close) = judge(req.head());
    let mut res = match verdict {
        Verdict::FaultyFraming => {
            let resp = HttpResponse::BadRequest().force_close().finish();
            req.into_response(resp).map_into_right_body()
        }
        Verdict::Host => req
            .into_response(HttpResponse::BadRequest().finish())
            .map_into_right_body(),
        Verdict::Pass => next.call(req).await?.map_into_left_body(),
    };
    if close {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::apply;
    use actix_web::http::{ConnectionType, Version};
    use actix_web::{test as atest, web, App, HttpResponse};

    #[actix_web::test]
    async fn faulty_framing_host_and_close() {
        let app = atest::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(apply))
                .default_service(web::to(HttpResponse::Ok)),
        )
        .await;
        // (version, headers, status, the response closes the connection)
        type Case = (Version, &'static [(&'static str, &'static str)], u16, bool);
        let cases: &[Case] = &[
            (Version::HTTP_11, &[("host", "a")], 200, false),
            (Version::HTTP_11, &[], 400, false),
            (
                Version::HTTP_11,
                &[("host", "a"), ("host", "b")],
                400,
                false,
            ),
            (Version::HTTP_10, &[], 200, false),
            (
                Version::HTTP_10,
                &[("host", "a"), ("host", "a")],
                200,
                false,
            ),
            (
                Version::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "chunked")],
                200,
                false,
            ),
            (
                Version::HTTP_11,
                &[("host", "a"), ("transfer-encoding", "identity")],
                400,
                true,
            ),
            (
                Version::HTTP_11,
                &[
                    ("host", "a"),
                    ("transfer-encoding", "chunked"),
                    ("content-length", "3"),
                ],
                400,
                true,
            ),
            (
                Version::HTTP_10,
                &[("transfer-encoding", "chunked")],
                400,
                true,
            ),
            // Faulty framing first, whatever the Host.
            (
                Version::HTTP_11,
                &[("transfer-encoding", "identity")],
                400,
                true,
            ),
            (
                Version::HTTP_11,
                &[("host", "a"), ("connection", "keep-alive, close")],
                200,
                true,
            ),
            (
                Version::HTTP_11,
                &[("host", "a"), ("connection", "close"), ("connection", "te")],
                200,
                true,
            ),
            (Version::HTTP_11, &[("connection", "te, CLOSE")], 400, true),
            (
                Version::HTTP_11,
                &[("host", "a"), ("connection", "keep-alive")],
                200,
                false,
            ),
        ];
        for (version, headers, status, close) in cases {
            let mut req = atest::TestRequest::get().version(*version);
            for h in headers.iter() {
                req = req.append_header(*h);
            }
            let resp = atest::call_service(&app, req.to_request()).await;
            let what = format!("{version:?} {headers:?}");
            assert_eq!(resp.status().as_u16(), *status, "{what}");
            assert_eq!(
                resp.response().head().connection_type() == ConnectionType::Close,
                *close,
                "{what}"
            );
        }
    }
}
