//! The scheduler's one shutdown signal, counted: the first request stops claiming and lets runs in
//! flight finish within the grace, a second stops them at once. The process owner (the CLI, from
//! SIGINT and SIGTERM) sends the requests; the daemon only waits for them, so it never touches signals.

use tokio::sync::watch;

/// Sends shutdown requests to the daemon.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    requests: watch::Sender<u32>,
}

/// What the daemon waits on.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requests: watch::Receiver<u32>,
}

pub fn channel() -> (ShutdownHandle, Shutdown) {
    let (requests, seen) = watch::channel(0);
    (ShutdownHandle { requests }, Shutdown { requests: seen })
}

impl ShutdownHandle {
    pub fn request(&self) {
        self.requests.send_modify(|count| *count += 1);
    }
}

impl Shutdown {
    /// Resolves once `nth` requests have been made; never, if no more can come.
    pub async fn requested(&mut self, nth: u32) {
        if self.requests.wait_for(|count| *count >= nth).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_second_request_is_told_apart_from_the_first() {
        let (handle, mut shutdown) = channel();
        handle.request();
        shutdown.requested(1).await;
        let second =
            tokio::time::timeout(std::time::Duration::from_millis(20), shutdown.requested(2));
        assert!(second.await.is_err(), "one request is not two");
        handle.request();
        shutdown.requested(2).await;
    }
}
