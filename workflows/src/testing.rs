//! Small workflows that really sleep, fail, time out and record side effects: the engine's
//! tests use them, and `autoglue serve --test-workflows` registers them so tests can drive
//! real worker processes. They touch nothing but the run's own rows and, for
//! [`SIDE_EFFECT`], a file the test names, which must lie in the system's temporary
//! directory; sleeps are bounded by [`MAX_SLEEP_MS`]. So a server started with the test
//! workflows on by mistake lets its users neither write outside the temporary directory nor
//! hold a worker for long.

use std::{io::Write, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    engine::Registry,
    flow::{RetryPolicy, Workflow},
    step::{StepCtx, StepError},
};

/// `{ "ms": n }`: sleeps n ms in step `sleep` (stopping early when cancelled), then `done`.
pub const SLEEP: &str = "test.sleep";
/// `{ "fail_times": n, "permanent": bool }`: step `prepare`, then step `flaky`, which fails
/// its first n attempts (3 per run pass, 200 ms then 400 ms apart).
pub const FLAKY: &str = "test.flaky";
/// `{}`: step `slow` outlives its 300 ms timeout on each of its 2 attempts.
pub const TIMEOUT: &str = "test.timeout";
/// `{}`: three steps that do nothing (benchmarks).
pub const THREE_STEPS: &str = "test.three_steps";
/// `{ "file": path, "ms": n }`: step `effect` appends a line to `file` once (recorded as
/// done before it goes on), then sleeps n ms; step `after` appends `after`.
pub const SIDE_EFFECT: &str = "test.side_effect";

/// Input of [`SLEEP`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleep {
    /// How long.
    pub ms: u64,
}

/// Input of [`FLAKY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flaky {
    /// Attempts that fail before one succeeds.
    pub fail_times: i32,
    /// Whether the failure is permanent (no retry).
    #[serde(default)]
    pub permanent: bool,
}

/// Input of [`SIDE_EFFECT`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideEffect {
    /// The file that records effects, one line each.
    pub file: String,
    /// How long the step sleeps after its effect.
    pub ms: u64,
}

/// The longest sleep a test workflow takes (5 minutes).
pub const MAX_SLEEP_MS: u64 = 300_000;

fn bounded(ms: u64) -> Result<u64, StepError> {
    if ms > MAX_SLEEP_MS {
        return Err(StepError::permanent(format!(
            "a test workflow sleeps at most {MAX_SLEEP_MS} ms"
        )));
    }
    Ok(ms)
}

/// `file` if it names a file directly inside an existing folder of the temporary directory
/// (links resolved), else a permanent failure.
fn confined(file: &str) -> Result<std::path::PathBuf, StepError> {
    let refuse = || {
        StepError::permanent(format!(
            "test workflows write only inside the temporary directory, not {file:?}"
        ))
    };
    let path = std::path::Path::new(file);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse());
    };
    let tmp = std::env::temp_dir().canonicalize().map_err(|_| refuse())?;
    let parent = parent.canonicalize().map_err(|_| refuse())?;
    if !parent.starts_with(&tmp) {
        return Err(refuse());
    }
    let target = parent.join(name);
    // No link at all, dangling or not: opening would follow it out.
    match std::fs::symlink_metadata(&target) {
        Ok(meta) if !meta.file_type().is_file() => Err(refuse()),
        _ => Ok(target),
    }
}

fn append(file: &str, line: &str) -> Result<(), StepError> {
    let file = &confined(file)?.display().to_string();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| StepError::permanent(format!("cannot open {file}: {e}")))?;
    writeln!(f, "{line}").map_err(|e| StepError::retryable(format!("cannot write {file}: {e}")))?;
    f.sync_all()
        .map_err(|e| StepError::retryable(format!("cannot sync {file}: {e}")))
}

async fn sleep_unless_cancelled(ctx: &StepCtx, ms: u64) -> Result<(), StepError> {
    let ms = bounded(ms)?;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(()),
        _ = ctx.cancelled() => Err(StepError::permanent("cancelled while sleeping")),
    }
}

/// Every test workflow.
pub fn register(registry: &mut Registry) {
    registry.register(
        Workflow::builder::<Sleep>(SLEEP)
            .step("sleep", |ctx, input: Sleep| async move {
                ctx.info(format!("sleeping {} ms", input.ms)).await;
                sleep_unless_cancelled(&ctx, input.ms).await?;
                ctx.info("woke up").await;
                Ok(input.ms)
            })
            .step("done", |_, slept: u64| async move { Ok(slept) })
            .build(),
    );
    registry.register(
        Workflow::builder::<Flaky>(FLAKY)
            .step("prepare", |_, input: Flaky| async move { Ok(input) })
            .step("flaky", |ctx, input: Flaky| async move {
                // Failures are counted in a checkpoint, so they add up across retries of the
                // whole run too.
                let failures: i32 = ctx.checkpoint("failures").await.unwrap_or(0);
                if failures < input.fail_times {
                    ctx.save_checkpoint("failures", &(failures + 1)).await?;
                    let message =
                        format!("planned failure {} of {}", failures + 1, input.fail_times);
                    ctx.warn(message.clone()).await;
                    return Err(if input.permanent {
                        StepError::permanent(message)
                    } else {
                        StepError::retryable(message)
                    });
                }
                Ok(ctx.attempt)
            })
            .retry(
                RetryPolicy::default()
                    .max_attempts(3)
                    .initial_delay(Duration::from_millis(200))
                    .jitter(0.0),
            )
            .build(),
    );
    registry.register(
        Workflow::builder::<serde_json::Value>(TIMEOUT)
            .step("slow", |_, _: serde_json::Value| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
            .timeout(Duration::from_millis(300))
            .retry(
                RetryPolicy::default()
                    .max_attempts(2)
                    .initial_delay(Duration::from_millis(100))
                    .jitter(0.0),
            )
            .build(),
    );
    registry.register(
        Workflow::builder::<serde_json::Value>(THREE_STEPS)
            .step("one", |_, _: serde_json::Value| async move { Ok(1) })
            .step("two", |_, n: i32| async move { Ok(n + 1) })
            .step("three", |_, n: i32| async move { Ok(n + 1) })
            .build(),
    );
    registry.register(
        Workflow::builder::<SideEffect>(SIDE_EFFECT)
            .step("effect", |ctx, input: SideEffect| async move {
                bounded(input.ms)?;
                confined(&input.file)?;
                let file = input.file.clone();
                let attempt = ctx.attempt;
                ctx.once("appended", || async move {
                    append(&file, &format!("effect attempt {attempt}"))?;
                    Ok(attempt)
                })
                .await?;
                sleep_unless_cancelled(&ctx, input.ms).await?;
                Ok(input)
            })
            .step("after", |_, input: SideEffect| async move {
                append(&input.file, "after")?;
                Ok(())
            })
            .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_outside_the_temporary_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("effects.log");
        assert!(confined(inside.to_str().unwrap()).is_ok());
        for outside in ["/etc/autoglue-test", "/root/.bashrc", "relative.log", "/"] {
            assert!(confined(outside).is_err(), "{outside}");
        }
        let sneaky = format!("{}/../../etc/passwd", dir.path().display());
        assert!(confined(&sneaky).is_err(), "{sneaky}");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
            assert!(confined(link.to_str().unwrap()).is_err(), "a link out");
            let dangling = dir.path().join("dangling");
            std::os::unix::fs::symlink("/var/tmp/not-there-yet", &dangling).unwrap();
            assert!(
                confined(dangling.to_str().unwrap()).is_err(),
                "a link to a file not made yet"
            );
        }
    }

    #[test]
    fn sleeps_are_bounded() {
        assert!(bounded(MAX_SLEEP_MS).is_ok());
        assert!(bounded(MAX_SLEEP_MS + 1).is_err());
    }
}
