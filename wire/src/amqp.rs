//! AMQP 0-9-1 as RabbitMQ speaks it: frames (type, channel, size, payload, 0xCE) in each
//! direction, and on each channel the three-part messages Basic.Publish / Deliver / Get-Ok /
//! Return → content header → content bodies. Connection and channel methods are read only
//! for the frame size limit; everything else that is not a message is skipped by its size.
//!
//! A frame whose tail was not captured is skipped by its size and still counts: a body frame
//! adds its full size to the message, so the message completes at the right frame with the
//! captured prefix of its body. A hole that crosses a frame boundary loses the framing; the
//! reader then scans for a frame it can verify (known type, plausible size, 0xCE at its end).

use std::collections::HashMap;

use crate::amqp_frames::{Frame, FrameKind, FrameReader};
use crate::records::AmqpMessage;
use crate::stream::{ConnectionParser, Segment, Side, Unparsed};

const CLASS_BASIC: u16 = 60;
const BASIC_PUBLISH: u16 = 40;
const BASIC_RETURN: u16 = 50;
const BASIC_DELIVER: u16 = 60;
const BASIC_GET_OK: u16 = 71;
const CLASS_CONNECTION: u16 = 10;
const CONNECTION_TUNE: u16 = 30;
const CONNECTION_TUNE_OK: u16 = 31;

/// Parses one AMQP connection into the messages it carried, both directions.
#[derive(Default)]
pub struct AmqpParser {
    client: FrameReader,
    server: FrameReader,
    /// Messages being assembled, by the side that sends them and their channel.
    channels: HashMap<(Side, u16), Assembly>,
    unparsed: Unparsed,
    frames: Vec<Frame>,
}

enum Assembly {
    /// The method was seen; its content header is next.
    Header(AmqpMessage),
    /// `received` of `body_size` body bytes so far (captured or not).
    Body { message: AmqpMessage, received: u64 },
    /// A message whose method could not be decoded: its header and bodies are dropped.
    Skipping,
}

impl AmqpParser {
    pub fn new() -> Self {
        Self::default()
    }

    fn dispatch(&mut self, side: Side, frame: Frame, out: &mut Vec<AmqpMessage>) {
        let key = (side, frame.channel);
        match frame.kind {
            FrameKind::Method => self.method(side, frame),
            FrameKind::Header => match self.channels.remove(&key) {
                Some(Assembly::Header(mut message)) => match parse_content_header(&frame.payload) {
                    Some(header) => {
                        message.body_size = header.body_size;
                        message.correlation_id = header.correlation_id;
                        message.reply_to = header.reply_to;
                        message.content_type = header.content_type;
                        message.headers = header.headers;
                        message.time_ns = frame.time_ns;
                        if header.body_size == 0 {
                            out.push(message);
                        } else {
                            self.channels.insert(
                                key,
                                Assembly::Body {
                                    message,
                                    received: 0,
                                },
                            );
                        }
                    }
                    None => {
                        self.unparsed.messages += 1;
                        self.channels.insert(key, Assembly::Skipping);
                    }
                },
                Some(Assembly::Skipping) => {
                    self.channels.insert(key, Assembly::Skipping);
                }
                Some(Assembly::Body { .. }) | None => {
                    // A header out of turn: the message it belongs to started before what
                    // we saw (or its method was lost in a hole).
                    self.unparsed.messages += 1;
                    self.channels.insert(key, Assembly::Skipping);
                }
            },
            FrameKind::Body => match self.channels.remove(&key) {
                Some(Assembly::Body {
                    mut message,
                    received,
                }) => {
                    // The body's captured prefix only: after a hole the bytes no longer
                    // line up with the body's offsets.
                    if message.body.len() as u64 == received {
                        // A frame running past the declared size is the sender's error; the
                        // body stays within what the header declared.
                        let room = message.body_size - received;
                        let take = frame
                            .payload
                            .len()
                            .min(usize::try_from(room).unwrap_or(usize::MAX));
                        message.body.extend_from_slice(&frame.payload[..take]);
                    }
                    let received = received + u64::from(frame.size);
                    message.time_ns = frame.time_ns;
                    if received >= message.body_size {
                        out.push(message);
                    } else {
                        self.channels
                            .insert(key, Assembly::Body { message, received });
                    }
                }
                Some(other) => {
                    self.channels.insert(key, other);
                }
                None => {}
            },
            FrameKind::Heartbeat => {}
        }
    }

    fn method(&mut self, side: Side, frame: Frame) {
        let key = (side, frame.channel);
        let mut r = Reader::new(&frame.payload);
        let (Some(class), Some(method)) = (r.u16(), r.u16()) else {
            self.unparsed.messages += 1;
            return;
        };
        if class == CLASS_CONNECTION && matches!(method, CONNECTION_TUNE | CONNECTION_TUNE_OK) {
            if let (Some(_channel_max), Some(frame_max)) = (r.u16(), r.u32()) {
                self.client.limit_frame_size(frame_max);
                self.server.limit_frame_size(frame_max);
            }
            return;
        }
        if class != CLASS_BASIC {
            return;
        }
        let name = match method {
            BASIC_PUBLISH => "basic.publish",
            BASIC_RETURN => "basic.return",
            BASIC_DELIVER => "basic.deliver",
            BASIC_GET_OK => "basic.get-ok",
            _ => return,
        };
        if let Some(Assembly::Header(_) | Assembly::Body { .. }) = self.channels.get(&key) {
            // The previous message on this channel never completed.
            self.unparsed.messages += 1;
        }
        let routing = match method {
            BASIC_PUBLISH => r.u16().and_then(|_reserved| r.routing()),
            BASIC_RETURN => r
                .u16()
                .and_then(|_code| r.short_str())
                .and_then(|_text| r.routing()),
            BASIC_DELIVER => r
                .short_str()
                .and_then(|_consumer_tag| r.u64())
                .and_then(|_delivery_tag| r.u8())
                .and_then(|_redelivered| r.routing()),
            _ => r
                .u64()
                .and_then(|_delivery_tag| r.u8())
                .and_then(|_redelivered| r.routing()),
        };
        let Some((exchange, routing_key)) = routing else {
            self.unparsed.messages += 1;
            self.channels.insert(key, Assembly::Skipping);
            return;
        };
        let message = AmqpMessage {
            time_ns: frame.time_ns,
            tid: frame.tid,
            from: side,
            method: name,
            exchange,
            routing_key,
            correlation_id: None,
            reply_to: None,
            content_type: None,
            headers: Vec::new(),
            body: Vec::new(),
            body_size: 0,
            python_stack_id: frame.python_stack_id,
        };
        self.channels.insert(key, Assembly::Header(message));
    }
}

impl ConnectionParser for AmqpParser {
    type Record = AmqpMessage;

    fn feed(&mut self, segment: &Segment<'_>, out: &mut Vec<AmqpMessage>) {
        let reader = match segment.from {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        let mut frames = std::mem::take(&mut self.frames);
        reader.feed(segment, &mut frames);
        for frame in frames.drain(..) {
            self.dispatch(segment.from, frame, out);
        }
        self.frames = frames;
    }

    fn close(&mut self, _time_ns: i64, _out: &mut Vec<AmqpMessage>) {
        // A message cut by the end of the connection is not a message the broker took.
        for (_, assembly) in self.channels.drain() {
            if !matches!(assembly, Assembly::Skipping) {
                self.unparsed.messages += 1;
            }
        }
    }

    fn unparsed(&self) -> Unparsed {
        let (client, server) = (self.client.unparsed(), self.server.unparsed());
        Unparsed {
            messages: self.unparsed.messages + client.messages + server.messages,
            bytes: self.unparsed.bytes + client.bytes + server.bytes,
        }
    }
}

struct ContentHeader {
    body_size: u64,
    content_type: Option<String>,
    correlation_id: Option<String>,
    reply_to: Option<String>,
    headers: Vec<(String, String)>,
}

/// class, weight, body size, property flags, then the properties the flags announce, in
/// the order of the spec's Basic class. A header cut by the capture keeps what it reached.
fn parse_content_header(payload: &[u8]) -> Option<ContentHeader> {
    let mut r = Reader::new(payload);
    let _class = r.u16()?;
    let _weight = r.u16()?;
    let body_size = r.u64()?;
    let mut header = ContentHeader {
        body_size,
        content_type: None,
        correlation_id: None,
        reply_to: None,
        headers: Vec::new(),
    };
    let Some(mut flags) = r.u16() else {
        return Some(header);
    };
    // Basic uses 14 properties, all in the first flags word; further words (bit 0 set)
    // would announce none it defines.
    while flags & 1 != 0 {
        let Some(more) = r.u16() else {
            return Some(header);
        };
        flags = (flags & !1) | (more & 1);
    }
    let has = |bit: u16| flags & (1 << bit) != 0;
    let mut read = || -> Option<()> {
        if has(15) {
            header.content_type = Some(r.short_str()?);
        }
        if has(14) {
            r.short_str()?; // content-encoding
        }
        if has(13) {
            header.headers = r.table()?;
        }
        if has(12) {
            r.u8()?; // delivery-mode
        }
        if has(11) {
            r.u8()?; // priority
        }
        if has(10) {
            header.correlation_id = Some(r.short_str()?);
        }
        if has(9) {
            header.reply_to = Some(r.short_str()?);
        }
        Some(())
    };
    let _ = read();
    Some(header)
}

/// Bounds-checked big-endian reads over a frame payload.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn short_str(&mut self) -> Option<String> {
        let n = self.u8()?;
        self.take(usize::from(n))
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    fn long_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(usize::try_from(n).ok()?)
    }

    /// exchange and routing key, as every Basic method that carries a message ends with.
    fn routing(&mut self) -> Option<(String, String)> {
        Some((self.short_str()?, self.short_str()?))
    }

    /// A field table; values that are tables or arrays are shown by their kind only.
    fn table(&mut self) -> Option<Vec<(String, String)>> {
        let mut fields = Reader::new(self.long_bytes()?);
        let mut entries = Vec::new();
        while !fields.bytes.is_empty() {
            let name = fields.short_str()?;
            let value = fields.field_value()?;
            entries.push((name, value));
        }
        Some(entries)
    }

    /// One typed field value, with RabbitMQ's type letters (which differ from the spec's
    /// for the short integers).
    fn field_value(&mut self) -> Option<String> {
        Some(match self.u8()? {
            b't' => (self.u8()? != 0).to_string(),
            b'b' => (self.u8()? as i8).to_string(),
            b'B' => self.u8()?.to_string(),
            b's' => (self.u16()? as i16).to_string(),
            b'u' => self.u16()?.to_string(),
            b'I' => (self.u32()? as i32).to_string(),
            b'i' => self.u32()?.to_string(),
            b'l' => (self.u64()? as i64).to_string(),
            b'L' => self.u64()?.to_string(),
            b'T' => self.u64()?.to_string(),
            b'f' => f32::from_bits(self.u32()?).to_string(),
            b'd' => f64::from_bits(self.u64()?).to_string(),
            b'D' => {
                let scale = self.u8()?;
                let value = self.u32()? as i32;
                format!("{value}e-{scale}")
            }
            b'S' | b'x' => String::from_utf8_lossy(self.long_bytes()?).into_owned(),
            b'A' => {
                self.long_bytes()?;
                "array".to_owned()
            }
            b'F' => {
                self.long_bytes()?;
                "table".to_owned()
            }
            b'V' => String::new(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
