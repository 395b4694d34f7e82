//! The queue's Lua scripts, compiled into the binary and run with EVALSHA (redis-rs loads a
//! script on the first NOSCRIPT and reuses its SHA afterwards), plus reply helpers.

use std::sync::LazyLock;

use ::redis::{Script, ScriptInvocation, Value};

use super::{config::Keys, error::QueueError};

macro_rules! script {
    ($name:ident, $($file:literal),+) => {
        pub(crate) static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(include_str!("lua/common.lua"), $(include_str!(concat!("lua/", $file))),+))
        });
    };
}

script!(FETCH, "fetch.lua");
script!(ACK, "create.lua", "ack.lua");
script!(RELEASE, "release.lua");
script!(RENEW, "renew.lua");
script!(HEARTBEAT, "heartbeat.lua");
script!(PUSH, "create.lua", "push.lua");
script!(LIST, "rows.lua", "list.lua");
script!(JOB, "rows.lua", "job.lua");
script!(RETRY, "retry.lua");
script!(CANCEL, "cancel.lua");
script!(COUNTS, "counts.lua");

/// An invocation of `script` with the queue's keys and `ARGV[1]` = its key base.
pub(crate) fn invocation<'a>(script: &'a Script, keys: &Keys) -> ScriptInvocation<'a> {
    let mut inv = script.prepare_invoke();
    for key in &keys.all {
        inv.key(key);
    }
    inv.arg(&keys.base);
    inv
}

pub(crate) fn protocol(what: &str) -> QueueError {
    QueueError::Protocol(what.to_owned())
}

/// The elements of an array reply.
pub(crate) fn array(v: Value) -> Result<Vec<Value>, QueueError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(QueueError::Protocol(format!(
            "expected an array, got {other:?}"
        ))),
    }
}

/// A string field; `None` for a Lua `false` (nil) or missing field.
pub(crate) fn opt_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A number field (integers come back as integers or as strings).
pub(crate) fn opt_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()?
            .parse::<f64>()
            .ok()
            .map(|f| f as i64),
        Value::SimpleString(s) => s.parse::<f64>().ok().map(|f| f as i64),
        Value::Double(d) => Some(*d as i64),
        _ => None,
    }
}

pub(crate) fn opt_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}
