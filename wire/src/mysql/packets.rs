//! MySQL packet framing over one direction of a connection: a 3-byte length, a sequence
//! number, the payload; payloads of 0xFFFFFF bytes continue in the next packet. The capture
//! may miss the tail of a segment: bytes missing inside a packet are skipped by its length,
//! bytes missing past its end lose the framing until the parser resynchronises.

use crate::origin::Origin;
use crate::sql_framing::Framer;
use crate::stream::Segment;

/// One logical packet (continuations joined).
#[derive(Debug)]
pub(crate) struct Packet {
    pub seq: u8,
    /// The payload's first bytes, up to the reader's keep limit.
    pub payload: Vec<u8>,
    pub len: usize,
    /// Some payload bytes were not captured.
    pub truncated: bool,
    pub origin: Origin,
    /// Time of the segment that held its last byte.
    pub end_ns: i64,
}

pub(super) type Framed = crate::sql_framing::Framed<Packet>;

const HEADER_LEN: usize = 4;
const CONTINUED: usize = 0xFF_FFFF;

pub(crate) struct PacketReader {
    /// Payload bytes kept per packet; the rest is counted, not stored.
    keep: usize,
    header: Vec<u8>,
    current: Option<Partial>,
    lost: bool,
}

struct Partial {
    packet: Packet,
    /// Payload bytes of the current physical packet still to come.
    remaining: usize,
    /// The current physical packet is 0xFFFFFF long: another one continues the payload.
    continued: bool,
}

impl Framer for PacketReader {
    type Unit = Packet;

    fn new(keep: usize, in_step: bool) -> Self {
        PacketReader {
            keep,
            header: Vec::with_capacity(HEADER_LEN),
            current: None,
            lost: !in_step,
        }
    }

    fn is_lost(&self) -> bool {
        self.lost
    }

    fn reset(&mut self) {
        self.header.clear();
        self.current = None;
        self.lost = false;
    }

    fn push(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        if self.lost {
            return;
        }
        let mut bytes = segment.bytes;
        while !bytes.is_empty() {
            match &mut self.current {
                Some(partial) if partial.remaining > 0 => {
                    let take = partial.remaining.min(bytes.len());
                    let room = self.keep.saturating_sub(partial.packet.payload.len());
                    partial
                        .packet
                        .payload
                        .extend_from_slice(&bytes[..take.min(room)]);
                    partial.remaining -= take;
                    bytes = &bytes[take..];
                }
                _ => {
                    let need = HEADER_LEN - self.header.len();
                    let take = need.min(bytes.len());
                    self.header.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.header.len() == HEADER_LEN {
                        self.start_physical(segment);
                    }
                }
            }
            self.finish_if_done(segment, out);
        }
        self.skip_missing(segment, out);
    }
}

impl PacketReader {
    fn start_physical(&mut self, segment: &Segment<'_>) {
        let len = usize::from(self.header[0])
            | usize::from(self.header[1]) << 8
            | usize::from(self.header[2]) << 16;
        let seq = self.header[3];
        self.header.clear();
        match &mut self.current {
            Some(partial) => {
                partial.packet.len += len;
                partial.remaining = len;
                partial.continued = len == CONTINUED;
            }
            None => {
                self.current = Some(Partial {
                    packet: Packet {
                        seq,
                        payload: Vec::with_capacity(len.min(self.keep)),
                        len,
                        truncated: false,
                        origin: Origin::of(segment),
                        end_ns: segment.time_ns,
                    },
                    remaining: len,
                    continued: len == CONTINUED,
                });
            }
        }
    }

    fn finish_if_done(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        let done = matches!(&self.current, Some(p) if p.remaining == 0 && !p.continued);
        if done
            && self.header.is_empty()
            && let Some(mut partial) = self.current.take()
        {
            partial.packet.end_ns = segment.time_ns;
            out.push(Framed::Whole(partial.packet));
        }
    }

    fn skip_missing(&mut self, segment: &Segment<'_>, out: &mut Vec<Framed>) {
        let mut missing = segment.missing();
        if missing == 0 {
            return;
        }
        if let Some(partial) = &mut self.current
            && self.header.is_empty()
            && partial.remaining > 0
        {
            let skip = missing.min(partial.remaining as u64);
            partial.remaining -= skip as usize;
            partial.packet.truncated = true;
            missing -= skip;
            self.finish_if_done(segment, out);
        }
        if missing > 0 {
            if let Some(mut partial) = self.current.take() {
                partial.packet.truncated = true;
                partial.packet.end_ns = segment.time_ns;
                if partial.remaining == 0 {
                    out.push(Framed::Whole(partial.packet));
                }
            }
            self.header.clear();
            self.lost = true;
            out.push(Framed::Lost);
        }
    }
}
