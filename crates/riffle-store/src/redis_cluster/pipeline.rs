//! One node's pipeline: the commands of each key ([`Op`]), `ASKING` before them after an
//! `ASK`, and what each key's replies say ([`Outcome`]): its answer, a redirect, or a failure.

use redis::{ErrorKind, RedisResult, ServerErrorKind, Value};

use crate::key_ops::{KeyDelete, KeyRead, KeyWrite};

/// One command group sent for one key.
#[derive(Clone, Copy)]
pub(crate) enum Op<'a> {
    Read(&'a KeyRead),
    ReadAll(&'a str),
    Write(&'a KeyWrite),
    Delete(&'a KeyDelete),
}

impl Op<'_> {
    pub(crate) fn key(&self) -> &str {
        match self {
            Op::Read(k) => &k.key,
            Op::ReadAll(k) => k,
            Op::Write(k) => &k.key,
            Op::Delete(d) => &d.key,
        }
    }

    /// Appends the op's commands (each after `ASKING` when `asking`); returns how many
    /// replies they produce.
    pub(crate) fn push(&self, pipe: &mut redis::Pipeline, asking: bool) -> usize {
        let mut n = 0;
        let mut cmd = |c: redis::Cmd| {
            if asking {
                pipe.cmd("ASKING");
                n += 1;
            }
            pipe.add_command(c);
            n += 1;
        };
        match self {
            Op::Read(k) => cmd(redis::cmd("HMGET").arg(&k.key).arg(&k.fields).to_owned()),
            Op::ReadAll(k) => cmd(redis::cmd("HGETALL").arg(*k).to_owned()),
            Op::Write(k) => {
                let mut hset = redis::cmd("HSET");
                hset.arg(&k.key);
                for (field, bytes) in &k.fields {
                    hset.arg(field).arg(bytes.as_slice());
                }
                cmd(hset);
                cmd(redis::cmd("PEXPIRE")
                    .arg(&k.key)
                    .arg(k.ttl.as_millis() as u64)
                    .to_owned());
            }
            Op::Delete(d) => cmd(redis::cmd("HDEL").arg(&d.key).arg(&d.fields).to_owned()),
        }
        n
    }
}

/// What became of one op sent to a node.
pub(crate) enum Outcome {
    /// Its last reply (the only one that carries data).
    Done(Value),
    Moved {
        slot: u16,
        addr: String,
    },
    Ask {
        addr: String,
    },
    /// An error reply; `refresh` when it says the slot map may be stale.
    Failed {
        refresh: bool,
    },
}

/// Splits a node's replies into one outcome per op (`replies[k]` replies for op `k`).
pub(crate) fn outcomes(
    values: Vec<RedisResult<Value>>,
    replies: &[usize],
    addr: &str,
) -> Vec<Outcome> {
    let mut values = values.into_iter();
    replies
        .iter()
        .map(|&n| {
            // The first error reply decides the op (a redirect or a failure); else its last
            // reply is its answer.
            let mut error = None;
            let mut last = None;
            for value in values.by_ref().take(n) {
                match value {
                    Ok(v) => last = Some(v),
                    Err(e) => {
                        error = error.or_else(|| Some(redirect_or_failure(&e, addr)));
                    }
                }
            }
            error
                .or(last.map(Outcome::Done))
                .unwrap_or(Outcome::Failed { refresh: false })
        })
        .collect()
}

fn redirect_or_failure(e: &redis::RedisError, addr: &str) -> Outcome {
    if let Some((to, slot)) = e.redirect_node() {
        // Redis 7 may leave the host empty ("MOVED 42 :7001"): the node that answered.
        let to = match to.strip_prefix(':') {
            Some(port) => format!("{}:{port}", addr.rsplit_once(':').map_or("", |(h, _)| h)),
            None => to.to_owned(),
        };
        return match e.kind() {
            ErrorKind::Server(ServerErrorKind::Ask) => Outcome::Ask { addr: to },
            _ => Outcome::Moved { slot, addr: to },
        };
    }
    let refresh = matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::ClusterDown)
            | ErrorKind::Server(ServerErrorKind::ReadOnly)
            | ErrorKind::Server(ServerErrorKind::MasterDown)
    );
    Outcome::Failed { refresh }
}
