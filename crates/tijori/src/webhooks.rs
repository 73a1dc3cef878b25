//! The core's `EventSender` over the `webhook-out` crate: Standard Webhooks signing,
//! the guard against private addresses (unless `TIJORI_WEBHOOK_ALLOW_PRIVATE`), no
//! redirects, and a 15 s limit per delivery.

use async_trait::async_trait;
use tijori_core::events::{EventSender, Message, Sent};
use webhook_out::{Secret, SendError, Sender, SenderConfig};

/// Sends tijori's outgoing events.
pub struct WebhookSender {
    sender: Sender,
    allow_private: bool,
}

impl WebhookSender {
    /// A sender with the Standard Webhooks timeout (15 s); `allow_private` lets
    /// endpoints be on loopback and private networks.
    pub fn new(allow_private: bool) -> anyhow::Result<WebhookSender> {
        let sender = Sender::new(SenderConfig {
            allow_private,
            user_agent: concat!("tijori/", env!("CARGO_PKG_VERSION")).to_owned(),
            ..SenderConfig::default()
        })?;
        Ok(WebhookSender {
            sender,
            allow_private,
        })
    }
}

#[async_trait]
impl EventSender for WebhookSender {
    async fn check_url(&self, url: &str) -> Result<String, String> {
        let url = webhook_out::check_url(url, self.allow_private).map_err(|e| e.to_string())?;
        self.sender
            .check_resolves(&url)
            .await
            .map_err(|e| e.to_string())?;
        Ok(url.to_string())
    }

    fn new_secret(&self) -> String {
        Secret::generate().expose().to_owned()
    }

    async fn send(&self, url: &str, message: &Message<'_>) -> Sent {
        let failed = |error: String| Sent {
            http_status: None,
            duration_ms: 0,
            response: String::new(),
            error: Some(error),
        };
        let url = match webhook_out::check_url(url, self.allow_private) {
            Ok(url) => url,
            Err(e) => return failed(format!("refused: {e}")),
        };
        let mut secrets = Vec::with_capacity(message.secrets.len());
        for s in &message.secrets {
            match Secret::parse(s) {
                Ok(secret) => secrets.push(secret),
                // A secret tijori made itself: stored wrong, it signs nothing.
                Err(e) => return failed(format!("the endpoint's secret is unusable: {e}")),
            }
        }
        let signing: Vec<&Secret> = secrets.iter().collect();
        let out = webhook_out::Message::signed(
            &signing,
            message.id.to_string(),
            message.timestamp,
            message.body.to_owned(),
        );
        let attempt = self.sender.send(&url, &out).await;
        Sent {
            http_status: attempt.http_status,
            duration_ms: u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX),
            response: attempt.response,
            error: attempt.error.map(|e| describe(&e)),
        }
    }
}

/// A failure as the operator reads it in the list of attempts.
fn describe(e: &SendError) -> String {
    match e {
        SendError::Refused(why) => format!("refused: {why}"),
        SendError::Timeout => "no answer within 15 s".to_owned(),
        SendError::Unreachable(why) => format!("unreachable: {why}"),
        SendError::Redirect { status, location } => match location {
            Some(to) => format!("redirected ({status}) to {to}: redirects are not followed"),
            None => format!("redirected ({status}): redirects are not followed"),
        },
        SendError::Malformed(why) => format!("could not be sent: {why}"),
    }
}

/// How much lower than the rest of the process deliveries run (added to the nice
/// value of their threads, up to 19, the lowest priority). At 10 more the kernel gives
/// a thread about a tenth of the CPU share of the others when both want it, and all of
/// it when nothing else does.
const DELIVERY_NICE: i32 = 10;

/// The runtime outgoing events are delivered on, one per process: two threads at
/// [`DELIVERY_NICE`]. A delivery costs about half of what a payment does (reads, the
/// body, TLS and HTTP); on a machine saturated with payments the kernel gives the
/// payments the CPU first and deliveries take what is left, catching up as soon as
/// the load drops (their jobs are durable, nothing is lost meanwhile). On Linux only;
/// elsewhere the threads keep the process's priority.
pub fn delivery_runtime() -> std::io::Result<tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if RUNTIME.get().is_none() {
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tijori-deliveries")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        // Two callers at once: one runtime is kept, the other stopped without blocking
        // (a runtime may not be dropped inside another's task).
        if let Err(spare) = RUNTIME.set(built) {
            spare.shutdown_background();
        }
    }
    RUNTIME
        .get()
        .map(|runtime| runtime.handle().clone())
        .ok_or_else(|| std::io::Error::other("the delivery runtime was not kept"))
}

/// Lowers the calling thread's CPU priority by [`DELIVERY_NICE`].
fn lower_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: gettid, getpriority and setpriority only read and set the calling
    // thread's scheduling attributes; on Linux the nice value is per thread, and
    // PRIO_PROCESS with a thread's id reads and sets that thread's alone. Raising one's
    // own nice value needs no privilege; should it fail, the thread keeps its
    // priority, which is harmless.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, thread);
        libc::setpriority(libc::PRIO_PROCESS, thread, (now + DELIVERY_NICE).min(19));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delivery threads run at the lower priority, the caller's keeps its own.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn deliveries_run_at_a_lower_priority() {
        let nice_of_this_thread = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            // Field 19 is the nice value; the command name (field 2) may hold spaces,
            // so count from the closing parenthesis.
            let after_name = &stat[stat.rfind(')').unwrap() + 2..];
            after_name
                .split(' ')
                .nth(16)
                .unwrap()
                .parse::<i32>()
                .unwrap()
        };
        let ours = nice_of_this_thread();
        let runtime = delivery_runtime().unwrap();
        let theirs = std::thread::spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(async move { nice_of_this_thread() })
                    .await
                    .unwrap()
            })
        })
        .join()
        .unwrap();
        assert_eq!(theirs, (ours + DELIVERY_NICE).min(19));
        assert_eq!(nice_of_this_thread(), ours, "only the delivery threads");
    }
}
