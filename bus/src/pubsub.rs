//! The Redis pub/sub transport: one publisher task and one subscriber connection per process.
//!
//! Publishing goes through a bounded queue to a task that owns a self-reconnecting
//! connection, so `publish` never waits on the network. Receiving uses one dedicated pub/sub
//! connection whose messages are decoded once and handed to the process's local broadcast
//! channel; when that connection drops (or stops answering the heartbeat PING) the task
//! reconnects with exponential backoff and jitter, and subscribes again.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use rand::Rng;
use redis::{
    AsyncCommands, Client,
    aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream},
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Error, Event, Result};

/// How to reach Redis and how much to buffer. `Debug` does not show the URL's password.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: SecretString,
    /// Namespace of this deployment's keys and channels: events go on `<prefix>:events`.
    pub prefix: String,
    /// Events waiting to be sent to Redis before `publish` drops new ones.
    pub outbound_capacity: usize,
    /// Events a slow local subscriber may lag behind before it skips.
    pub buffer: usize,
    /// Longest wait for a connection or a command.
    pub timeout: Duration,
    /// How often the subscriber connection is checked with a PING (a connection that died
    /// without closing, e.g. a vanished host, is only noticed this way).
    pub heartbeat: Duration,
}

impl RedisSettings {
    /// Settings for `url` under `prefix`, with default buffers and timeouts.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisSettings {
            url: SecretString::from(url.into()),
            prefix: prefix.into(),
            outbound_capacity: 1024,
            buffer: crate::EventBus::BUFFER,
            timeout: Duration::from_secs(5),
            heartbeat: Duration::from_secs(15),
        }
    }

    /// The pub/sub channel events travel on.
    pub fn channel(&self) -> String {
        format!("{}:events", self.prefix)
    }
}

/// Backoff between reconnection attempts: from `MIN_BACKOFF`, doubling, at most `MAX_BACKOFF`.
/// The cap is short so that the bus (and `/readyz`) is back within about a second of
/// Redis' return, however long it was away; one attempt a second costs a down Redis nothing.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The live side of the Redis transport, owned by the [`crate::EventBus`] clones.
pub(crate) struct RedisLink {
    outbound: mpsc::Sender<Event>,
    /// For PING; the publisher task has its own clone of this multiplexed connection.
    conn: ConnectionManager,
    subscribed: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    timeout: Duration,
    /// Dropped with the link: tells the subscriber task to stop.
    _stop: oneshot::Sender<()>,
}

impl RedisLink {
    /// Connects both sides and subscribes before returning; spawns the two tasks.
    pub(crate) async fn connect(
        settings: &RedisSettings,
        local: broadcast::Sender<Event>,
    ) -> Result<Self> {
        let client = Client::open(settings.url.expose_secret()).map_err(Error::InvalidUrl)?;
        let t = settings.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t))
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF);
        let channel = settings.channel();
        // The subscription first: a single attempt, so a Redis that is not there fails start-up
        // at once with the real cause (the manager would retry until the timeout).
        let subscription = subscribe(&client, &channel, t).await?;
        let conn = within(t, client.get_connection_manager_with_config(config)).await?;
        let (outbound, queue) = mpsc::channel(settings.outbound_capacity.max(1));
        let (stop, stopped) = oneshot::channel();
        let link = RedisLink {
            outbound,
            conn: conn.clone(),
            subscribed: Arc::new(AtomicBool::new(true)),
            dropped: Arc::new(AtomicU64::new(0)),
            timeout: t,
            _stop: stop,
        };
        let publisher = Publisher {
            conn,
            channel: channel.clone(),
            dropped: link.dropped.clone(),
        };
        tokio::spawn(publisher.run_until_closed(queue));
        let subscriber = Subscriber {
            client,
            channel,
            local,
            subscribed: link.subscribed.clone(),
            timeout: t,
            heartbeat: settings.heartbeat,
        };
        tokio::spawn(subscriber.run_until_stopped(subscription, stopped));
        Ok(link)
    }

    /// Queues `event` for Redis without waiting; drops it when the queue is full.
    pub(crate) fn publish(&self, event: Event) {
        if self.outbound.try_send(event).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Once per thousand: an outage must not flood the log as well.
            if dropped % 1000 == 1 {
                tracing::warn!(dropped, "event bus queue to Redis is full; dropping events");
            }
        }
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        if !self.subscribed.load(Ordering::Relaxed) {
            return Err(Error::Disconnected);
        }
        let mut conn = self.conn.clone();
        let pong: String = within(self.timeout, redis::cmd("PING").query_async(&mut conn)).await?;
        tracing::trace!(%pong, "Redis answered");
        Ok(())
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Runs `f`, mapping its error and a timeout to [`Error`].
async fn within<T>(t: Duration, f: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(t, f).await {
        Ok(result) => result.map_err(Error::Unavailable),
        Err(_) => Err(Error::Timeout(t)),
    }
}

/// A fresh pub/sub connection subscribed to `channel`.
async fn subscribe(
    client: &Client,
    channel: &str,
    t: Duration,
) -> Result<(PubSubSink, PubSubStream)> {
    let (mut sink, stream) = within(t, client.get_async_pubsub()).await?.split();
    within(t, sink.subscribe(channel)).await?;
    Ok((sink, stream))
}

/// Sends queued events to Redis, one PUBLISH each, until every sender is gone.
struct Publisher {
    conn: ConnectionManager,
    channel: String,
    dropped: Arc<AtomicU64>,
}

impl Publisher {
    async fn run_until_closed(mut self, mut queue: mpsc::Receiver<Event>) {
        while let Some(event) = queue.recv().await {
            let payload = match serde_json::to_string(&event) {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot serialize an event; dropped");
                    continue;
                }
            };
            if let Err(e) = self.send(&payload).await {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot publish an event to Redis; dropped");
            }
        }
    }

    /// One PUBLISH, tried twice: after a failure the connection reconnects, so the second
    /// attempt usually lands (a killed connection, a Redis restart).
    async fn send(&mut self, payload: &str) -> redis::RedisResult<()> {
        let first: redis::RedisResult<i64> = self.conn.publish(&self.channel, payload).await;
        if first.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(MIN_BACKOFF).await;
        let _receivers: i64 = self.conn.publish(&self.channel, payload).await?;
        Ok(())
    }
}

/// Feeds the local broadcast channel from the pub/sub connection, reconnecting as needed.
struct Subscriber {
    client: Client,
    channel: String,
    local: broadcast::Sender<Event>,
    subscribed: Arc<AtomicBool>,
    timeout: Duration,
    heartbeat: Duration,
}

impl Subscriber {
    async fn run_until_stopped(
        self,
        first: (PubSubSink, PubSubStream),
        mut stopped: oneshot::Receiver<()>,
    ) {
        let mut connection = Some(first);
        let mut backoff = MIN_BACKOFF;
        loop {
            if let Some((sink, stream)) = connection.take() {
                self.subscribed.store(true, Ordering::Relaxed);
                backoff = MIN_BACKOFF;
                tokio::select! {
                    _ = &mut stopped => return,
                    () = self.forward(sink, stream) => {}
                }
                self.subscribed.store(false, Ordering::Relaxed);
                tracing::warn!("lost the Redis pub/sub connection; reconnecting");
            }
            let delay = jitter(backoff);
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(delay) => {}
            }
            match subscribe(&self.client, &self.channel, self.timeout).await {
                Ok(fresh) => {
                    tracing::info!(channel = %self.channel, "resubscribed to Redis");
                    connection = Some(fresh);
                }
                Err(e) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot resubscribe to Redis");
                }
            }
        }
    }

    /// Hands every message to local subscribers until the connection ends or fails a PING.
    async fn forward(&self, mut sink: PubSubSink, mut stream: PubSubStream) {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => self.deliver(msg.get_payload_bytes()),
                    None => return,
                },
                _ = heartbeat.tick() => {
                    let ping = sink.ping::<redis::Value>();
                    if let Err(e) = within(self.timeout, ping).await {
                        tracing::warn!(error = %e, "Redis pub/sub connection failed its heartbeat");
                        return;
                    }
                }
            }
        }
    }

    fn deliver(&self, payload: &[u8]) {
        match serde_json::from_slice::<Event>(payload) {
            // No local subscriber is not an error.
            Ok(event) => {
                let _ = self.local.send(event);
            }
            // From a newer version, most likely, during a rolling deploy.
            Err(e) => tracing::warn!(error = %e, "skipping an event this version cannot read"),
        }
    }
}

/// `base` give or take a quarter, so processes that lost Redis together do not all
/// reconnect in the same instant.
fn jitter(base: Duration) -> Duration {
    base.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
}
