//! The Redis transport against a real Redis (`AG_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). Two buses in one test stand for two processes; every test
//! uses a channel prefix of its own, so tests running side by side do not hear each other.

use std::time::Duration;

use bus::{Error, Event, EventBus, RedisSettings};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("AG_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn run_id() -> String {
    std::env::var("AG_TEST_RUN_ID").unwrap_or_else(|_| "local".into())
}

fn unique_prefix() -> String {
    format!("ag_test_{}_{}", run_id(), Uuid::now_v7().simple())
}

async fn redis_bus(settings: RedisSettings) -> EventBus {
    EventBus::redis(settings)
        .await
        .unwrap_or_else(|e| panic!("Redis at {} does not answer: {e}", redis_url()))
}

fn created() -> Event {
    Event::OrganizationCreated {
        organization_id: Uuid::now_v7(),
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Event> + Send>>;

fn subscribe(bus: &EventBus) -> Events {
    Box::pin(bus.subscribe())
}

async fn next_within(stream: &mut Events, wait: Duration) -> Option<Event> {
    tokio::time::timeout(wait, stream.next())
        .await
        .ok()
        .flatten()
}

async fn next(stream: &mut Events) -> Option<Event> {
    next_within(stream, Duration::from_secs(5)).await
}

/// Polls `check` every 50 ms until it holds; fails the test after `limit`.
async fn wait_until<F: Future<Output = bool>>(limit: Duration, what: &str, check: impl Fn() -> F) {
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection for the test itself, to administer Redis.
async fn admin() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers")
}

async fn run(conn: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    let _: redis::Value = cmd.query_async(conn).await.expect("admin command");
}

/// A Redis ACL user of this test only, so the test can cut exactly its own connections
/// (`CLIENT KILL USER`) and lock them out; deleted at the end.
struct TestUser {
    name: String,
    url: String,
}

impl TestUser {
    const PASSWORD: &str = "bus-test-secret";

    async fn create() -> TestUser {
        let name = unique_prefix();
        let pass = format!(">{}", Self::PASSWORD);
        run(
            &mut admin().await,
            &["ACL", "SETUSER", &name, "on", &pass, "~*", "&*", "+@all"],
        )
        .await;
        let mut url = url::Url::parse(&redis_url()).unwrap();
        url.set_username(&name).unwrap();
        url.set_password(Some(Self::PASSWORD)).unwrap();
        TestUser {
            name,
            url: url.to_string(),
        }
    }

    async fn set(&self, state: &str) {
        run(&mut admin().await, &["ACL", "SETUSER", &self.name, state]).await;
    }

    async fn kill_connections(&self, only_pubsub: bool) {
        let mut args = vec!["CLIENT", "KILL", "USER", &self.name];
        if only_pubsub {
            args.extend(["TYPE", "pubsub"]);
        }
        run(&mut admin().await, &args).await;
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async { run(&mut admin().await, &["ACL", "DELUSER", &name]).await });
        })
        .join();
    }
}

#[tokio::test]
async fn an_event_from_either_process_reaches_both_exactly_once() {
    let prefix = unique_prefix();
    let a = redis_bus(RedisSettings::new(redis_url(), &prefix)).await;
    let b = redis_bus(RedisSettings::new(redis_url(), &prefix)).await;
    let elsewhere = redis_bus(RedisSettings::new(redis_url(), unique_prefix())).await;
    let (mut sa, mut sb, mut other) = (subscribe(&a), subscribe(&b), subscribe(&elsewhere));
    assert_eq!(a.transport_name(), "redis");

    let (e, f) = (created(), created());
    a.publish(e.clone());
    b.publish(f.clone());
    for s in [&mut sa, &mut sb] {
        // Publishers are independent processes: only each one's own order is kept.
        let mut got = vec![next(s).await.unwrap(), next(s).await.unwrap()];
        got.sort_by_key(|e| e.organization_id());
        let mut want = vec![e.clone(), f.clone()];
        want.sort_by_key(|e| e.organization_id());
        assert_eq!(got, want);
        let extra = next_within(s, Duration::from_millis(300)).await;
        assert_eq!(extra, None, "each event arrives once");
    }
    let stray = next_within(&mut other, Duration::from_millis(100)).await;
    assert_eq!(stray, None, "another prefix is another deployment");
    assert!(a.ping().await.is_ok());
    assert_eq!(a.dropped() + b.dropped(), 0);
}

#[tokio::test]
async fn workflow_events_cross_processes_intact() {
    let prefix = unique_prefix();
    let a = redis_bus(RedisSettings::new(redis_url(), &prefix)).await;
    let b = redis_bus(RedisSettings::new(redis_url(), &prefix)).await;
    let mut sb = subscribe(&b);
    let event = Event::WorkflowStepUpdated {
        run_id: Uuid::now_v7(),
        organization_id: Some(Uuid::now_v7()),
        step_id: Uuid::now_v7(),
        position: 3,
        name: "workers join".into(),
        status: entity::enums::WorkflowStatus::Retrying,
        attempt: 2,
    };
    a.publish(event.clone());
    assert_eq!(next(&mut sb).await, Some(event));
}

#[tokio::test]
async fn a_lagging_subscriber_skips_instead_of_buffering() {
    let mut settings = RedisSettings::new(redis_url(), unique_prefix());
    settings.buffer = 4;
    let bus = redis_bus(settings).await;
    let (mut fast, mut slow) = (subscribe(&bus), subscribe(&bus));
    let events: Vec<Event> = (0..10).map(|_| created()).collect();
    // One at a time, each received by the fast one before the next goes out: the fast one
    // never lags (even on a loaded machine), the slow one, never read, does.
    for e in &events {
        bus.publish(e.clone());
        assert_eq!(next(&mut fast).await.as_ref(), Some(e));
    }
    for e in &events[6..] {
        assert_eq!(
            next(&mut slow).await.as_ref(),
            Some(e),
            "only the newest 4 kept"
        );
    }
}

#[tokio::test]
async fn publish_drops_and_counts_when_the_queue_is_full() {
    let mut settings = RedisSettings::new(redis_url(), unique_prefix());
    settings.outbound_capacity = 4;
    let bus = redis_bus(settings).await;
    let mut s = subscribe(&bus);
    let events: Vec<Event> = (0..100).map(|_| created()).collect();
    // A current-thread runtime: the publisher task cannot run until this test awaits, so
    // the queue takes 4 and the other 96 are dropped, without `publish` ever blocking.
    for e in &events {
        bus.publish(e.clone());
    }
    assert_eq!(bus.dropped(), 96);
    for e in &events[..4] {
        assert_eq!(next(&mut s).await.as_ref(), Some(e));
    }
    assert_eq!(next_within(&mut s, Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn start_fails_fast_when_redis_does_not_answer() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let err = EventBus::redis(RedisSettings::new(url, "x"))
        .await
        .err()
        .expect("no Redis there");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let err = EventBus::redis(RedisSettings::new("http://x", "x")).await;
    assert!(matches!(err, Err(Error::InvalidUrl(_))));
}

#[tokio::test]
async fn the_subscriber_reconnects_after_its_connection_is_killed() {
    let user = TestUser::create().await;
    let prefix = unique_prefix();
    let a = redis_bus(RedisSettings::new(&user.url, &prefix)).await;
    let b = redis_bus(RedisSettings::new(redis_url(), &prefix)).await;
    let mut sa = subscribe(&a);
    user.kill_connections(true).await;
    // Pub/sub keeps nothing for a disconnected process: probe until one gets through.
    let started = std::time::Instant::now();
    loop {
        let probe = created();
        b.publish(probe.clone());
        if next_within(&mut sa, Duration::from_millis(200)).await == Some(probe) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no resubscribe"
        );
    }
}

#[tokio::test]
async fn an_outage_shows_in_ping_and_both_sides_recover() {
    let user = TestUser::create().await;
    let prefix = unique_prefix();
    let a = redis_bus(RedisSettings::new(&user.url, &prefix)).await;
    let b = redis_bus(RedisSettings::new(redis_url(), &prefix)).await;
    let (mut sa, mut sb) = (subscribe(&a), subscribe(&b));

    // Redis drops every connection of `a` and refuses new ones.
    user.set("off").await;
    user.kill_connections(false).await;
    wait_until(
        Duration::from_secs(5),
        "ping reports the outage",
        || async { a.ping().await.is_err() },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.ping().await.is_err(), "still down while refused");

    user.set("on").await;
    wait_until(Duration::from_secs(20), "ping recovers", || async {
        a.ping().await.is_ok()
    })
    .await;
    let (e, f) = (created(), created());
    a.publish(e.clone());
    assert_eq!(next(&mut sb).await, Some(e.clone()), "a publishes again");
    assert_eq!(next(&mut sa).await, Some(e), "a hears its own again");
    b.publish(f.clone());
    assert_eq!(next(&mut sa).await, Some(f), "a hears the others again");
}
