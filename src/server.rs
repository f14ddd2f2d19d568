//! The actix server: shared state ([`AppState`]), routes, listeners, graceful shutdown.
//!
//! [`run`] takes already-bound listeners, so callers (and tests) choose ports, and logs one
//! `listening on http://ADDR` line per listener — the line test harnesses wait for.

use std::net::TcpListener;

use std::time::Duration;

use actix_web::{web, App};

use crate::admin::auth::AdminAuth;
use crate::config::Config;
use crate::state::AppState;

/// How long a graceful shutdown waits for responses in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Raise the soft open-file limit to the hard one (many clients, cached handles): systemd
/// and shells start services with a soft limit of 1024.
pub fn raise_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let before = lim.current;
        lim.current = lim.maximum;
        match setrlimit(Resource::Nofile, lim) {
            Ok(()) => log::debug!(
                "open-file limit raised from {before:?} to {:?}",
                lim.maximum
            ),
            Err(e) => log::debug!("cannot raise the open-file limit: {e}"),
        }
    }
}

/// Bind every `listen` address of the config.
pub fn bind(cfg: &Config) -> std::io::Result<Vec<TcpListener>> {
    cfg.listen
        .iter()
        .map(|addr| {
            bind_one(addr)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        })
        .collect()
}

/// Bind one `host:port`. IPv6 sockets are IPv6-only, so `["0.0.0.0:7878", "[::]:7878"]`
/// (the documented dual-stack setup) does not collide on Linux's default dual-stack sockets.
fn bind_one(addr: &str) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if sa.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&sa.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Register the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::admin::routes::configure(cfg);
    cfg.default_service(web::to(crate::http::mirror::handle));
}

/// The service for one accepted connection: [`crate::http::conn`]'s front end, which answers plain
/// package requests itself ([`crate::http::conn::fastpath`], sendfile) and hands every other request to
/// the actix app over HTTP/1.1 ([`crate::http::conn::handoff`]).
fn connection_service(
    data: web::Data<AppState>,
    auth: web::Data<AdminAuth>,
    addr: std::net::SocketAddr,
) -> impl actix_service::ServiceFactory<
    actix_web::rt::net::TcpStream,
    Config = (),
    Response = (),
    Error = (),
    InitError = (),
> {
    use actix_service::ServiceFactoryExt as _;
    use actix_service::{fn_factory, fn_service, map_config, IntoServiceFactory, Service as _};
    let app_data = data.clone();
    let app = App::new()
        .wrap(actix_web::middleware::from_fn(require_host))
        .wrap(crate::http::access_log::actix_logger())
        .app_data(app_data)
        .app_data(auth)
        .configure(configure)
        .into_factory()
        .map_err(|e: actix_web::Error| e.error_response());
    // Keep-alive and the head timeout apply when actix has whole connections
    // (`fast_path = false`); otherwise the front end applies the same limits to every request.
    let h1 = actix_http::HttpService::build()
        .keep_alive(crate::http::conn::KEEP_ALIVE)
        .client_request_timeout(crate::http::conn::HEAD_TIMEOUT)
        .local_addr(addr)
        .h1(map_config(app, |_| actix_web::dev::AppConfig::default()));
    let h1 = std::rc::Rc::new(h1);
    fn_factory(move || {
        let h1 = h1.clone();
        let data = data.clone();
        async move {
            use actix_service::ServiceFactory as _;
            let handler = std::rc::Rc::new(h1.new_service(()).await?);
            Ok::<_, ()>(fn_service(move |io: actix_web::rt::net::TcpStream| {
                let handler = handler.clone();
                let data = data.clone();
                async move {
                    crate::http::conn::serve_connection(io, &data, |io, peer| {
                        handler.call((io, peer))
                    })
                    .await;
                    Ok::<_, ()>(())
                }
            }))
        }
    })
}

/// RFC 9112 §3.2: an HTTP/1.1 request without exactly one `Host` is answered 400. actix-http
/// 3.18.11 and later refuse such a request while parsing it (and the front end hands it to
/// actix to do so); this keeps the rule whatever actix-http version is built in.
async fn require_host(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<
    actix_web::dev::ServiceResponse<actix_web::body::EitherBody<impl actix_web::body::MessageBody>>,
    actix_web::Error,
> {
    let hosts = req.headers().get_all(actix_web::http::header::HOST).count();
    if req.version() == actix_web::http::Version::HTTP_11 && hosts != 1 {
        let resp = actix_web::HttpResponse::BadRequest().finish();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    next.call(req).await.map(|r| r.map_into_left_body())
}

/// Serve until SIGTERM/SIGINT (graceful: responses in progress get [`SHUTDOWN_GRACE`]).
pub async fn run(state: AppState, listeners: Vec<TcpListener>) -> std::io::Result<()> {
    let data = web::Data::new(state);
    crate::jobs::warm_up::start(&data.jobs);
    let auth = web::Data::new(AdminAuth::new(data.cfg.token.clone()));
    let mut builder = actix_server::Server::build().shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    let mut addrs = Vec::new();
    for l in listeners {
        let addr = l.local_addr()?;
        addrs.push(addr);
        let (data, auth) = (data.clone(), auth.clone());
        builder = builder.listen(format!("pkgstash-{addr}"), l, move || {
            connection_service(data.clone(), auth.clone(), addr)
        })?;
    }
    let server = builder.run();
    if let Some(interval) = data.cfg.refresh.interval {
        actix_web::rt::spawn(crate::jobs::refresh::run_schedule(
            data.jobs.clone(),
            interval,
        ));
    }
    actix_web::rt::spawn(persist_index_periodically(data.clone()));
    actix_web::rt::spawn(sweep_open_files(data.clone()));
    if let Some(aur) = &data.aur {
        let own_url = addrs
            .first()
            .map(|a| crate::config::loopback_url(&a.to_string()))
            .unwrap_or_else(|| data.cfg.admin_base_url());
        actix_web::rt::spawn(crate::aur::run(aur.clone(), own_url));
    }
    for a in addrs {
        log::info!("listening on http://{a}");
    }
    server.await?;
    log::info!(
        "stopped; {} download(s) were still in flight",
        data.registry.snapshot().len()
    );
    Ok(())
}

/// Close idle cached file handles (so removed files release their space).
async fn sweep_open_files(state: web::Data<AppState>) {
    loop {
        tokio::time::sleep(crate::cache::open_files::IDLE).await;
        state.open_files.sweep();
    }
}

/// Save last-served times every few minutes (only when they changed).
async fn persist_index_periodically(state: web::Data<AppState>) {
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let index = state.index.clone();
        match web::block(move || index.persist()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("cannot persist last-served times: {e}"),
            Err(e) => log::warn!("cannot persist last-served times: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::require_host;
    use actix_web::{http::Version, test as atest, web, App, HttpResponse};

    #[actix_web::test]
    async fn http11_needs_exactly_one_host() {
        let app = atest::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(require_host))
                .default_service(web::to(HttpResponse::Ok)),
        )
        .await;
        for (version, hosts, want) in [
            (Version::HTTP_11, 0, 400),
            (Version::HTTP_11, 2, 400),
            (Version::HTTP_11, 1, 200),
            (Version::HTTP_10, 0, 200),
        ] {
            let mut req = atest::TestRequest::get().version(version);
            for i in 0..hosts {
                req = req.append_header(("host", format!("h{i}")));
            }
            let resp = atest::call_service(&app, req.to_request()).await;
            assert_eq!(
                resp.status().as_u16(),
                want,
                "{version:?} with {hosts} Host"
            );
        }
    }
}
