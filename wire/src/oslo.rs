//! oslo.messaging's RPC over the AMQP messages of a run, as its rabbit driver sends them
//! (oslo.messaging 18, `_drivers/amqpdriver.py`, `impl_rabbit.py`, `common.py`):
//!
//! - Every body is JSON; RPC bodies are the 2.0 envelope `{"oslo.version": "2.0",
//!   "oslo.message": "<the message as a JSON string>"}` (notifications of the `messaging`
//!   v1 driver are the bare message).
//! - A call is `{"method", "args", "namespace"?, "version", "_msg_id", "_reply_q",
//!   "_timeout", "_unique_id", "_context_*"...}` published to the control exchange with the
//!   topic as routing key (`topic_send`, or `<topic>_fanout` for fanout casts); a cast is
//!   the same without `_msg_id`/`_reply_q`.
//! - A reply is `{"result", "failure", "ending", "_msg_id", "_unique_id"}` published to the
//!   default exchange `""` with the caller's reply queue as routing key (`direct_send`).
//!   The caller waits until a reply with `"ending": true`; `"ending": false` replies are
//!   the server's call-monitor heartbeats (or, from old servers, the result sent ahead of a
//!   separate ending message).
//! - A notification is `{"message_id", "publisher_id", "event_type", "priority",
//!   "payload", "timestamp"}` published to the control exchange (default `openstack`) with
//!   `notifications.<priority>` as routing key.
//!
//! The members are read in the order the driver writes them, so a body cut by the capture
//! still yields those before the cut; a member that was not reached is unknown, not absent.

use std::collections::{HashMap, VecDeque};

use crate::json_scan::{JsonObject, JsonValue, top_level_members};
use crate::records::AmqpMessage;
use crate::stream::Side;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Sent,
    Received,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Received => "received",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcKind {
    Call,
    Cast,
    Reply,
    Notification,
    /// Not an oslo.messaging message, or one cut before what tells its kind.
    Other,
}

impl RpcKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::Cast => "cast",
            Self::Reply => "reply",
            Self::Notification => "notification",
            Self::Other => "other",
        }
    }
}

/// One row of `rpc.parquet`: an oslo.messaging message the traced process sent or received.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcRecord {
    pub time_ns: i64,
    pub pid: u32,
    pub tid: u32,
    pub conn_id: u64,
    pub direction: Direction,
    pub exchange: String,
    pub routing_key: String,
    pub kind: RpcKind,
    /// The RPC method; for a notification its `event_type`; `None` for replies.
    pub method: Option<String>,
    pub namespace: Option<String>,
    pub version: Option<String>,
    /// `_msg_id`: set on calls and their replies.
    pub msg_id: Option<String>,
    /// A call's `_reply_q`; for a reply, the queue it was routed to (the same name).
    pub reply_q: Option<String>,
    /// On a call: from the call to the reply that ended it, paired by `_msg_id`.
    pub latency_ns: Option<u64>,
    /// A reply's remote exception as `module.Class: message` (`Class: message` for
    /// builtins).
    pub failure: Option<String>,
    /// Whether a reply is the last for its call (`ending`); `None` on other kinds.
    pub ending: Option<bool>,
    pub body_bytes: u64,
    pub python_stack_id: Option<u64>,
}

/// What the body of one message says, as far as it was captured.
#[derive(Debug, Default, PartialEq)]
struct OsloBody {
    kind: Option<RpcKind>,
    method: Option<String>,
    namespace: Option<String>,
    version: Option<String>,
    msg_id: Option<String>,
    reply_q: Option<String>,
    failure: Option<String>,
    ending: Option<bool>,
}

fn decode_body(body: &[u8]) -> OsloBody {
    let outer = top_level_members(body);
    let inner_text;
    let message = match outer.get("oslo.message") {
        Some(JsonValue::Str { text, .. }) => {
            inner_text = text.clone();
            top_level_members(inner_text.as_bytes())
        }
        _ => outer,
    };
    if !message.is_object {
        return OsloBody {
            kind: Some(RpcKind::Other),
            ..OsloBody::default()
        };
    }
    let owned = |key: &str| message.str(key).map(str::to_owned);
    let ending = match message.get("ending") {
        Some(JsonValue::Bool(b)) => Some(*b),
        _ => None,
    };
    let mut decoded = OsloBody {
        msg_id: owned("_msg_id"),
        namespace: owned("namespace"),
        version: owned("version"),
        ..OsloBody::default()
    };
    if let Some(method) = owned("method") {
        decoded.reply_q = owned("_reply_q");
        // `_unique_id` follows `_msg_id` and `_reply_q` when the driver adds them: seeing
        // it without them is as good as the end of the message.
        decoded.kind = if decoded.msg_id.is_some() {
            Some(RpcKind::Call)
        } else if message.complete || message.get("_unique_id").is_some() {
            Some(RpcKind::Cast)
        } else {
            None
        };
        decoded.method = Some(method);
    } else if let Some(event_type) = owned("event_type") {
        decoded.kind = Some(RpcKind::Notification);
        decoded.method = Some(event_type);
    } else if ["result", "failure", "ending"]
        .iter()
        .any(|key| message.get(key).is_some())
    {
        decoded.kind = Some(RpcKind::Reply);
        decoded.failure = message.get("failure").and_then(failure_summary);
        decoded.ending = ending;
    } else if message.complete || message.get("publisher_id").is_some() {
        // A notification cut before its event type still names its publisher first.
        decoded.kind = Some(if message.get("publisher_id").is_some() {
            RpcKind::Notification
        } else {
            RpcKind::Other
        });
    }
    decoded
}

/// `failure` is null or the JSON text of `serialize_remote_exception`: class, module,
/// message, tb, args, kwargs.
fn failure_summary(value: &JsonValue) -> Option<String> {
    let JsonValue::Str { text, .. } = value else {
        return None;
    };
    let failure: JsonObject = top_level_members(text.as_bytes());
    match (failure.str("class"), failure.str("message")) {
        (Some(class), Some(message)) => Some(match failure.str("module") {
            Some(module) if module != "builtins" && module != "exceptions" => {
                format!("{module}.{class}: {message}")
            }
            _ => format!("{class}: {message}"),
        }),
        _ => Some(text.clone()),
    }
}

/// Where a message was seen: the traced process, its connection, and which end of the
/// connection the process is (client for a service talking to its broker).
#[derive(Clone, Copy, Debug)]
pub struct MessageOrigin {
    pub pid: u32,
    pub conn_id: u64,
    pub traced_side: Side,
}

/// Turns the AMQP messages of all connections of a run into RPC rows, pairing each call
/// with the reply that ends it (same process and `_msg_id`; the reply comes back on the
/// process's reply-queue connection, usually not the one the call went out on). A call is
/// held until then, or until `reply_timeout_ns` of run time has passed without it.
pub struct RpcPairing {
    reply_timeout_ns: i64,
    waiting: HashMap<CallKey, RpcRecord>,
    /// Calls in the order they were held, to let go of those past the timeout.
    order: VecDeque<(i64, CallKey)>,
    latest_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    pid: u32,
    msg_id: String,
    /// The call's direction: a call sent pairs with a reply received, and the reverse (a
    /// process can be both the caller and the server of a call).
    direction: Direction,
}

impl RpcPairing {
    pub fn new(reply_timeout_ns: u64) -> Self {
        Self {
            reply_timeout_ns: i64::try_from(reply_timeout_ns).unwrap_or(i64::MAX),
            waiting: HashMap::new(),
            order: VecDeque::new(),
            latest_ns: i64::MIN,
        }
    }

    /// Appends the message's row, unless it is a call waiting for its reply, and the rows
    /// of calls its arrival completes or times out.
    pub fn push(&mut self, origin: MessageOrigin, message: &AmqpMessage, out: &mut Vec<RpcRecord>) {
        let body = decode_body(&message.body);
        let direction = if message.from == origin.traced_side {
            Direction::Sent
        } else {
            Direction::Received
        };
        let kind = body.kind.unwrap_or(RpcKind::Other);
        let record = RpcRecord {
            time_ns: message.time_ns,
            pid: origin.pid,
            tid: message.tid,
            conn_id: origin.conn_id,
            direction,
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
            kind,
            method: body.method,
            namespace: body.namespace,
            version: body.version,
            msg_id: body.msg_id,
            reply_q: if kind == RpcKind::Reply {
                Some(message.routing_key.clone())
            } else {
                body.reply_q
            },
            latency_ns: None,
            failure: body.failure,
            ending: body.ending,
            body_bytes: message.body_size,
            python_stack_id: message.python_stack_id,
        };
        self.latest_ns = self.latest_ns.max(message.time_ns);
        match (kind, record.msg_id.clone()) {
            (RpcKind::Call, Some(msg_id)) => {
                let key = CallKey {
                    pid: origin.pid,
                    msg_id,
                    direction,
                };
                self.order.push_back((record.time_ns, key.clone()));
                if let Some(resent) = self.waiting.insert(key, record) {
                    out.push(resent);
                }
            }
            (RpcKind::Reply, msg_id) if record.ending != Some(false) => {
                let call_direction = match direction {
                    Direction::Sent => Direction::Received,
                    Direction::Received => Direction::Sent,
                };
                let key = match msg_id {
                    Some(msg_id) => Some(CallKey {
                        pid: origin.pid,
                        msg_id,
                        direction: call_direction,
                    }),
                    None => self.only_call_for(origin.pid, &message.routing_key, call_direction),
                };
                if let Some(mut call) = key.and_then(|key| self.waiting.remove(&key)) {
                    call.latency_ns =
                        Some(record.time_ns.saturating_sub(call.time_ns).max(0) as u64);
                    out.push(call);
                }
                out.push(record);
            }
            _ => out.push(record),
        }
        self.expire(out);
    }

    /// A reply cut before its `_msg_id` (a failure's traceback comes first) still answers
    /// a call when only one call of the process waits on the queue it came back to: a
    /// heartbeat (`ending: false`) is too short to be cut, so a cut reply is a final one.
    fn only_call_for(&self, pid: u32, reply_q: &str, direction: Direction) -> Option<CallKey> {
        let mut waiting = self.waiting.iter().filter(|(key, call)| {
            key.pid == pid && key.direction == direction && call.reply_q.as_deref() == Some(reply_q)
        });
        match (waiting.next(), waiting.next()) {
            (Some((key, _)), None) => Some(key.clone()),
            _ => None,
        }
    }

    /// The run ended: calls still waiting have no reply.
    pub fn finish(&mut self, out: &mut Vec<RpcRecord>) {
        self.order.clear();
        let mut rest: Vec<RpcRecord> = self.waiting.drain().map(|(_, call)| call).collect();
        rest.sort_by_key(|call| call.time_ns);
        out.extend(rest);
    }

    fn expire(&mut self, out: &mut Vec<RpcRecord>) {
        while let Some((time_ns, _)) = self.order.front() {
            if self.latest_ns.saturating_sub(*time_ns) <= self.reply_timeout_ns {
                break;
            }
            let (time_ns, key) = self.order.pop_front().expect("front");
            // The key may since have been answered, or re-sent (then it expires later).
            if self
                .waiting
                .get(&key)
                .is_some_and(|call| call.time_ns == time_ns)
            {
                out.extend(self.waiting.remove(&key));
            }
        }
    }
}

#[cfg(test)]
mod tests;
