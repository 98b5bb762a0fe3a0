//! One direction of an AMQP 0-9-1 connection cut into frames: the 8-byte protocol header,
//! then `type u8, channel u16, size u32, payload[size], 0xCE`.

use crate::origin::Origin;
use crate::stream::{Segment, Unparsed};

const FRAME_END: u8 = 0xCE;
const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// RabbitMQ's default `frame_max`; a scan for a frame after lost bytes accepts no larger
/// frame until Connection.Tune says otherwise.
const DEFAULT_FRAME_MAX: u32 = 131_072;
/// Largest frame believed while in step (RabbitMQ cannot be configured beyond this).
const SYNCED_FRAME_MAX: u32 = 1 << 29;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Method,
    Header,
    Body,
    Heartbeat,
}

impl FrameKind {
    fn from_type(frame_type: u8) -> Option<Self> {
        match frame_type {
            1 => Some(Self::Method),
            2 => Some(Self::Header),
            3 => Some(Self::Body),
            // 4 is the heartbeat of AMQP 0-8, which old brokers still send.
            4 | 8 => Some(Self::Heartbeat),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: FrameKind,
    pub channel: u16,
    /// The payload size the frame declared.
    pub size: u32,
    /// The captured part of the payload (all of it unless the capture cut the frame).
    pub payload: Vec<u8>,
    /// When the frame's last byte was moved.
    pub time_ns: i64,
    /// The thread (and its Python stack) that moved the frame's first byte.
    pub tid: u32,
    pub python_stack_id: Option<u64>,
}

/// A frame whose payload the capture cut: it is handed on once its last byte has gone by.
struct CutFrame {
    frame: Frame,
    remaining: u64,
}

pub(crate) struct FrameReader {
    buf: Vec<u8>,
    /// Where the bytes of `buf` came from, for frames that started in an earlier segment.
    carried: Origin,
    cut: Option<CutFrame>,
    /// At a frame boundary; false at the start (the trace may begin mid-stream) and after
    /// losing bytes across a boundary.
    synced: bool,
    frame_max: u32,
    unparsed: Unparsed,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            carried: Origin::default(),
            cut: None,
            synced: false,
            frame_max: DEFAULT_FRAME_MAX,
            unparsed: Unparsed::default(),
        }
    }
}

struct FrameHead {
    kind: FrameKind,
    channel: u16,
    size: u32,
}

fn frame_head(bytes: &[u8]) -> Option<FrameHead> {
    let head = bytes.get(..7)?;
    Some(FrameHead {
        kind: FrameKind::from_type(head[0])?,
        channel: u16::from_be_bytes([head[1], head[2]]),
        size: u32::from_be_bytes([head[3], head[4], head[5], head[6]]),
    })
}

enum Scan {
    /// A verified frame or protocol header starts here.
    Found(usize),
    /// Nothing before here can start one; from here on it depends on bytes to come.
    NeedMore(usize),
}

impl FrameReader {
    pub(crate) fn limit_frame_size(&mut self, frame_max: u32) {
        if frame_max != 0 {
            self.frame_max = frame_max.max(4096);
        }
    }

    pub(crate) fn unparsed(&self) -> Unparsed {
        self.unparsed
    }

    pub(crate) fn feed(&mut self, segment: &Segment<'_>, frames: &mut Vec<Frame>) {
        let origin = Origin::of(segment);
        let mut bytes = segment.bytes;
        let mut missing = segment.missing();
        if let Some(cut) = &mut self.cut {
            let captured = (cut.remaining.min(bytes.len() as u64)) as usize;
            let ends_here = cut.remaining <= bytes.len() as u64;
            if ends_here && captured > 0 && bytes[captured - 1] != FRAME_END {
                self.cut = None;
                self.lose(bytes.len() as u64 + missing);
                return;
            }
            bytes = &bytes[captured..];
            cut.remaining -= captured as u64;
            let uncaptured = cut.remaining.min(missing);
            cut.remaining -= uncaptured;
            missing -= uncaptured;
            if cut.remaining > 0 {
                return;
            }
            let mut frame = self.cut.take().expect("cut frame").frame;
            frame.time_ns = segment.time_ns;
            frames.push(frame);
        }

        let carried_len = self.buf.len();
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        loop {
            if !self.synced {
                match self.scan(pos) {
                    Scan::Found(at) => {
                        self.unparsed.bytes += (at - pos) as u64;
                        pos = at;
                        self.synced = true;
                    }
                    Scan::NeedMore(at) => {
                        self.unparsed.bytes += (at - pos) as u64;
                        pos = at;
                        break;
                    }
                }
            }
            let rest = &self.buf[pos..];
            if rest.first() == Some(&b'A') {
                if rest.len() < PROTOCOL_HEADER.len() {
                    break;
                }
                if rest.starts_with(PROTOCOL_HEADER) {
                    pos += PROTOCOL_HEADER.len();
                } else {
                    self.synced = false;
                }
                continue;
            }
            let Some(head) = frame_head(rest) else {
                if rest.len() >= 7 {
                    self.out_of_step();
                    continue;
                }
                break;
            };
            if head.size > SYNCED_FRAME_MAX {
                self.out_of_step();
                continue;
            }
            let total = 8 + head.size as usize;
            if rest.len() < total {
                break;
            }
            if rest[total - 1] != FRAME_END {
                self.out_of_step();
                continue;
            }
            let from = if pos < carried_len {
                self.carried
            } else {
                origin
            };
            frames.push(Frame {
                kind: head.kind,
                channel: head.channel,
                size: head.size,
                payload: rest[7..total - 1].to_vec(),
                time_ns: segment.time_ns,
                tid: from.tid,
                python_stack_id: from.python_stack_id,
            });
            pos += total;
        }

        if missing > 0 {
            let rest = &self.buf[pos..];
            match frame_head(rest) {
                Some(head) if self.synced && head.size <= SYNCED_FRAME_MAX => {
                    let from = if pos < carried_len {
                        self.carried
                    } else {
                        origin
                    };
                    let captured = (rest.len() - 7).min(head.size as usize);
                    let mut remaining = 8 + u64::from(head.size) - rest.len() as u64;
                    let uncaptured = remaining.min(missing);
                    remaining -= uncaptured;
                    missing -= uncaptured;
                    let frame = Frame {
                        kind: head.kind,
                        channel: head.channel,
                        size: head.size,
                        payload: rest[7..7 + captured].to_vec(),
                        time_ns: segment.time_ns,
                        tid: from.tid,
                        python_stack_id: from.python_stack_id,
                    };
                    if remaining == 0 {
                        frames.push(frame);
                    } else {
                        self.cut = Some(CutFrame { frame, remaining });
                    }
                    pos = self.buf.len();
                }
                _ => {}
            }
            if missing > 0 {
                // The hole crossed a frame boundary: what follows is out of step.
                self.unparsed.bytes += (self.buf.len() - pos) as u64;
                self.lose(missing);
                return;
            }
        }
        if pos >= carried_len {
            self.carried = origin;
        }
        self.buf.drain(..pos);
    }

    /// The bytes at the current position are not a frame: count it and scan onwards.
    fn out_of_step(&mut self) {
        self.unparsed.messages += 1;
        self.synced = false;
    }

    fn lose(&mut self, bytes: u64) {
        self.unparsed.bytes += bytes;
        self.buf.clear();
        self.synced = false;
    }

    /// The first position at or after `from` where a frame can be verified: a known type,
    /// a size within `frame_max`, a payload that fits its type, and 0xCE where it ends.
    fn scan(&self, from: usize) -> Scan {
        let buf = &self.buf;
        for at in from..buf.len() {
            let rest = &buf[at..];
            if rest.len() < PROTOCOL_HEADER.len() && PROTOCOL_HEADER.starts_with(rest) {
                return Scan::NeedMore(at);
            }
            if rest.starts_with(PROTOCOL_HEADER) {
                return Scan::Found(at);
            }
            if rest.len() < 7 {
                return Scan::NeedMore(at);
            }
            let Some(head) = frame_head(rest) else {
                continue;
            };
            if head.size > self.frame_max {
                continue;
            }
            match plausible(&head, rest) {
                Some(true) => {}
                Some(false) => continue,
                // A reader that takes the 7-byte header in a recv() of its own (py-amqp)
                // leaves the payload's first bytes for the next segment.
                None => return Scan::NeedMore(at),
            }
            let total = 8 + head.size as usize;
            if rest.len() < total {
                return Scan::NeedMore(at);
            }
            if rest[total - 1] == FRAME_END {
                return Scan::Found(at);
            }
        }
        Scan::NeedMore(buf.len())
    }
}

/// Whether a scanned header is believable for a frame of its type; `None` while the payload
/// bytes that decide it have not arrived.
fn plausible(head: &FrameHead, rest: &[u8]) -> Option<bool> {
    let payload = &rest[7..];
    let starts_with = |min_size: u32, prefix: &dyn Fn(&[u8]) -> bool, checked: usize| {
        if head.size < min_size {
            Some(false)
        } else if payload.len() < checked {
            None
        } else {
            Some(prefix(&payload[..checked]))
        }
    };
    match head.kind {
        FrameKind::Method => starts_with(
            4,
            &|class| {
                matches!(
                    u16::from_be_bytes([class[0], class[1]]),
                    10 | 20 | 40 | 50 | 60 | 85 | 90
                )
            },
            2,
        ),
        FrameKind::Header => starts_with(14, &|class_weight| class_weight == [0, 60, 0, 0], 4),
        FrameKind::Body => Some(head.size > 0),
        FrameKind::Heartbeat => Some(head.channel == 0 && head.size == 0),
    }
}
