//! The actix server: shared state ([`AppState`]), routes, listeners, background tasks, graceful
//! shutdown.
//!
//! [`run`] takes already-bound listeners, so callers (and tests) choose ports, and logs one
//! `listening on http://ADDR` line per listener — the line test harnesses wait for.
//!
//! **Lifecycle.** The background tasks (scheduled refresh, the AUR check and build loops, the
//! periodic save of the cache index, the sweep of idle open files) run until the drain begins
//! (SIGTERM/SIGINT: new requests refused, the health check failing, transfers in progress
//! given `shutdown_grace` to finish — [`shutdown`]); they are cancelled together (one
//! [`CancellationToken`]); once the drain ends the server stops, the tasks are awaited, and
//! the cache index's last-served times are saved one last time before [`run`] returns.

use std::net::TcpListener;

use std::time::Duration;

use actix_web::{web, App};
use tokio_util::sync::CancellationToken;

use crate::admin::auth::AdminAuth;
use crate::config::Config;
use crate::state::AppState;

mod shutdown;

/// How often the cache index's last-served times are saved while running (and once at stop).
const INDEX_SAVE_INTERVAL: Duration = Duration::from_secs(300);

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
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
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
        .wrap(actix_web::middleware::from_fn(
            crate::http::drain::refuse_new_work,
        ))
        .wrap(actix_web::middleware::from_fn(
            crate::http::request_rules::apply,
        ))
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
                    let _counted = data.drain.connection();
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

/// Serve until SIGTERM/SIGINT, then drain for at most `shutdown_grace` ([`shutdown`]).
pub async fn run(state: AppState, listeners: Vec<TcpListener>) -> std::io::Result<()> {
    let mut signals = shutdown::Signals::register()?;
    let data = web::Data::new(state);
    crate::jobs::warm_up::start(&data.jobs);
    let auth = web::Data::new(AdminAuth::new(data.cfg.token.clone()));
    // The signals are ours (the drain); actix stops when told, at once.
    let mut builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(0);
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
    let mut background = Background::default();
    if let Some(interval) = data.cfg.refresh.interval {
        background.spawn(crate::jobs::refresh::run_schedule(
            data.jobs.clone(),
            interval,
        ));
    }
    background.spawn(persist_index_periodically(data.clone()));
    background.spawn(sweep_open_files(data.clone()));
    if let Some(aur) = &data.aur {
        let own_url = addrs
            .first()
            .map(|a| crate::config::loopback_url(&a.to_string()))
            .unwrap_or_else(|| data.cfg.admin_base_url());
        background.spawn(crate::aur::run(aur.clone(), own_url));
    }
    for a in addrs {
        log::info!("listening on http://{a}");
    }
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown::wait_and_drain(&data, &mut signals, &background.shutdown) => {
            // The stop command is sent now; the server's future carries it out (awaiting the
            // returned future before polling the server's would wait forever).
            drop(handle.stop(false));
            server.await
        }
    };
    background.stop().await;
    data.index.persist_off_worker().await;
    log::info!(
        "stopped; {} download(s) were still in flight",
        data.registry.snapshot().len()
    );
    served
}

/// The background tasks: spawned on the actix runtime, cancelled and awaited together.
#[derive(Default)]
struct Background {
    /// Cancelled when the server has stopped.
    shutdown: CancellationToken,
    tasks: Vec<actix_web::rt::task::JoinHandle<Option<()>>>,
}

impl Background {
    /// Run `task` until [`Background::stop`] (a task in the middle of its work is dropped
    /// there: a refresh stops where it is, a build's processes are killed; what they store is
    /// written by [`crate::durable`]'s rule, so nothing is left half-written).
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + 'static) {
        let shutdown = self.shutdown.clone();
        self.tasks.push(actix_web::rt::spawn(
            shutdown.run_until_cancelled_owned(task),
        ));
    }

    /// Cancel every task and wait until each has stopped.
    async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                log::warn!("a background task ended badly: {e}");
            }
        }
    }
}

/// Close idle cached file handles (so removed files release their space), off the async
/// worker: closing the last handle of a removed large file frees its blocks.
async fn sweep_open_files(state: web::Data<AppState>) {
    loop {
        tokio::time::sleep(crate::cache::open_files::IDLE).await;
        let open_files = state.open_files.clone();
        if let Err(e) = web::block(move || open_files.sweep()).await {
            log::warn!("sweeping idle file handles did not finish: {e}");
        }
    }
}

/// Save last-served times every few minutes (only when they changed).
async fn persist_index_periodically(state: web::Data<AppState>) {
    loop {
        tokio::time::sleep(INDEX_SAVE_INTERVAL).await;
        state.index.persist_off_worker().await;
    }
}
