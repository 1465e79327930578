//! What the listener needs from the operating system: a listening socket
//! with a backlog large enough for a burst of connections, and an open-file
//! limit large enough for the connection limit (raised at start, and the
//! connection limit fitted to it).

use tokio::net::TcpListener;

/// File descriptors kept back from connections for upload files, the
/// database and the webhook client.
const FD_RESERVE: u64 = 256;

/// Raises the soft open-file limit to the hard limit, so that the
/// connection limit (not the default 1024 descriptors) is what bounds
/// connections. Returns the soft limit now in force, if known.
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let lim = getrlimit(Resource::Nofile);
        let soft = lim.current?;
        let hard = lim.maximum;
        if hard.is_some_and(|h| h <= soft) {
            return Some(soft);
        }
        // An unlimited hard limit cannot be the soft one everywhere (macOS
        // refuses more than OPEN_MAX); try it, then a large finite value.
        for target in [
            hard,
            Some(hard.unwrap_or(u64::MAX).min(1 << 20)),
            Some(10240),
        ] {
            let Some(target) = target.filter(|t| *t > soft) else {
                continue;
            };
            let new = rustix::process::Rlimit {
                current: Some(target),
                maximum: hard,
            };
            if setrlimit(Resource::Nofile, new).is_ok() {
                tracing::info!(from = soft, to = target, "raised the open-file limit");
                return Some(target);
            }
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection limit that fits in `fd_limit` descriptors.
pub fn fit_to_fd_limit(max_connections: usize, fd_limit: Option<u64>) -> usize {
    let Some(fds) = fd_limit else {
        return max_connections.max(1);
    };
    let room = fds.saturating_sub(FD_RESERVE).max(16);
    let fitted = (max_connections as u64).min(room) as usize;
    if fitted < max_connections {
        tracing::warn!(
            configured = max_connections,
            open_file_limit = fds,
            using = fitted,
            "the connection limit is lowered to fit the open-file limit"
        );
    }
    fitted.max(1)
}

/// Binds `addr` with an accept backlog of `backlog` (the kernel caps it at
/// its own maximum, `net.core.somaxconn` on Linux): a burst of connections
/// larger than tokio's default of 1024 would otherwise overflow the queue,
/// and a client whose handshake the kernel dropped believes it is connected
/// while the server never sees it.
pub fn bind(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// The backlog for a connection limit: room for a burst as large as the
/// limit, within what every kernel accepts.
pub fn backlog_for(max_connections: usize) -> u32 {
    max_connections.clamp(1024, 65_535) as u32
}
