//! The recorded conversations under `fixtures/` (see `fixtures/README.md`) as parser input,
//! and the ways the tests cut and damage them.

#![allow(dead_code)] // each test file uses its own part of this

use std::collections::BTreeMap;
use std::path::Path;

use wire::amqp::AmqpParser;
use wire::http::HttpParser;
use wire::oslo::{MessageOrigin, RpcPairing, RpcRecord};
use wire::records::{AmqpMessage, HttpRecord};
use wire::stream::{ConnectionParser, Segment, Side, Unparsed};

/// One recv() of the recording proxy: what one side sent, as one syscall moved it.
#[derive(Clone, Debug)]
pub struct Capture {
    pub conn: u64,
    /// The process the connection belongs to (the listener it came through).
    pub process: u32,
    pub from: Side,
    pub time_ns: i64,
    pub bytes: Vec<u8>,
    /// How many bytes the syscall moved (more than `bytes` once a capture limit is applied).
    pub len: u64,
}

impl Capture {
    pub fn segment(&self) -> Segment<'_> {
        Segment {
            time_ns: self.time_ns,
            tid: self.process,
            from: self.from,
            bytes: &self.bytes,
            len: self.len,
            python_stack_id: None,
        }
    }
}

pub fn load(name: &str) -> Vec<Capture> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(' ').collect();
            // One traced connection, as `common::load` reads it (`C|S time hex`): connection
            // and process 1.
            if fields.len() == 3 {
                let side = if fields[0] == "C" { "c" } else { "s" };
                fields = vec!["1", "1", side, fields[1], fields[2]];
            }
            assert_eq!(fields.len(), 5, "{line}");
            let bytes = hex(fields[4]);
            Capture {
                conn: fields[0].parse().unwrap(),
                process: fields[1].parse().unwrap(),
                from: if fields[2] == "c" {
                    Side::Client
                } else {
                    Side::Server
                },
                time_ns: fields[3].parse().unwrap(),
                len: bytes.len() as u64,
                bytes,
            }
        })
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The captures of each connection, in order.
pub fn by_connection(captures: &[Capture]) -> BTreeMap<u64, Vec<Capture>> {
    let mut conns: BTreeMap<u64, Vec<Capture>> = BTreeMap::new();
    for capture in captures {
        conns.entry(capture.conn).or_default().push(capture.clone());
    }
    conns
}

pub fn run<P: ConnectionParser>(mut parser: P, captures: &[Capture]) -> (Vec<P::Record>, Unparsed) {
    let mut out = Vec::new();
    for capture in captures {
        parser.feed(&capture.segment(), &mut out);
    }
    let end = captures.last().map_or(0, |c| c.time_ns);
    parser.close(end, &mut out);
    (out, parser.unparsed())
}

pub fn http_records(captures: &[Capture]) -> Vec<(u64, HttpRecord)> {
    let mut records = Vec::new();
    for (conn, captures) in by_connection(captures) {
        let (out, unparsed) = run(HttpParser::new(), &captures);
        assert_eq!(unparsed, Unparsed::default(), "connection {conn}");
        records.extend(out.into_iter().map(|r| (conn, r)));
    }
    records
}

/// Every AMQP message of the run with where it was seen, in the order the connections'
/// syscalls returned.
pub fn amqp_messages(captures: &[Capture]) -> (Vec<(MessageOrigin, AmqpMessage)>, Unparsed) {
    let mut parsers: BTreeMap<u64, AmqpParser> = BTreeMap::new();
    let mut messages = Vec::new();
    let mut out = Vec::new();
    for capture in captures {
        let parser = parsers.entry(capture.conn).or_default();
        parser.feed(&capture.segment(), &mut out);
        let origin = MessageOrigin {
            pid: capture.process,
            conn_id: capture.conn,
            traced_side: Side::Client,
        };
        messages.extend(out.drain(..).map(|m| (origin, m)));
    }
    let mut unparsed = Unparsed::default();
    for (conn, mut parser) in parsers {
        parser.close(0, &mut out);
        let origin = MessageOrigin {
            pid: 0,
            conn_id: conn,
            traced_side: Side::Client,
        };
        messages.extend(out.drain(..).map(|m| (origin, m)));
        unparsed.messages += parser.unparsed().messages;
        unparsed.bytes += parser.unparsed().bytes;
    }
    (messages, unparsed)
}

pub fn rpc_records(captures: &[Capture]) -> Vec<RpcRecord> {
    let (messages, _) = amqp_messages(captures);
    let mut pairing = RpcPairing::new(60_000_000_000);
    let mut out = Vec::new();
    for (origin, message) in &messages {
        pairing.push(*origin, message, &mut out);
    }
    pairing.finish(&mut out);
    out
}

/// A small deterministic generator (SplitMix64), so a failing case can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// Each capture split at random points into several, all at the capture's time: the bytes,
/// their order and their times are unchanged, so the records must be too.
pub fn chop(captures: &[Capture], rng: &mut Rng) -> Vec<Capture> {
    let mut pieces = Vec::new();
    for capture in captures {
        let mut rest = &capture.bytes[..];
        while rest.len() > 1 && rng.below(3) != 0 {
            let cut = 1 + rng.below(rest.len() as u64 - 1) as usize;
            let (head, tail) = rest.split_at(cut);
            pieces.push(Capture {
                bytes: head.to_vec(),
                len: head.len() as u64,
                ..capture.clone()
            });
            rest = tail;
        }
        pieces.push(Capture {
            bytes: rest.to_vec(),
            len: rest.len() as u64,
            ..capture.clone()
        });
    }
    pieces
}

/// The captures of an AMQP conversation cut the way py-amqp reads frames: each frame's 7-byte
/// header, its payload and its end byte in three recv()s (kombu's transport, which
/// oslo.messaging uses). Each side's stream is followed across captures, so a frame spread
/// over several captures is cut the same way; bytes and times are unchanged.
pub fn frame_reads(captures: &[Capture]) -> Vec<Capture> {
    // Per connection and side: bytes of the stream seen so far, and where the next cut is.
    let mut streams: BTreeMap<(u64, bool), (Vec<u8>, Vec<usize>)> = BTreeMap::new();
    let mut pieces = Vec::new();
    for capture in captures {
        let (stream, cuts) = streams
            .entry((capture.conn, capture.from == Side::Client))
            .or_default();
        let start = stream.len();
        stream.extend_from_slice(&capture.bytes);
        frame_cuts(stream, cuts);
        let mut at = start;
        for &cut in cuts.iter() {
            // A frame without payload has its header and end byte cut at the same place.
            if cut <= at || cut >= stream.len() {
                continue;
            }
            pieces.push(Capture {
                bytes: stream[at..cut].to_vec(),
                len: (cut - at) as u64,
                ..capture.clone()
            });
            at = cut;
        }
        pieces.push(Capture {
            bytes: stream[at..].to_vec(),
            len: (stream.len() - at) as u64,
            ..capture.clone()
        });
    }
    pieces
}

/// Extends `cuts` (the ends of the protocol header and of frames' header, payload and end
/// byte so far) as far as the frames in `stream` can be followed.
fn frame_cuts(stream: &[u8], cuts: &mut Vec<usize>) {
    let mut frame_start = match cuts.last() {
        Some(&last) => last,
        None if stream.starts_with(b"AMQP") => {
            if stream.len() < 8 {
                return;
            }
            cuts.push(8);
            8
        }
        None => 0,
    };
    while let Some(head) = stream.get(frame_start..frame_start + 7) {
        let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
        let end = frame_start + 8 + size;
        cuts.extend([frame_start + 7, end - 1, end]);
        frame_start = end;
    }
}

/// What a kernel capture limited to `prefix` bytes per syscall would have copied.
pub fn limit(captures: &[Capture], prefix: usize) -> Vec<Capture> {
    captures
        .iter()
        .map(|c| Capture {
            bytes: c.bytes[..c.bytes.len().min(prefix)].to_vec(),
            ..c.clone()
        })
        .collect()
}

/// The captures with some bytes flipped, dropped, duplicated or swapped for random ones.
pub fn mutate(captures: &[Capture], rng: &mut Rng) -> Vec<Capture> {
    let mut mutated = captures.to_vec();
    for _ in 0..1 + rng.below(8) {
        let i = rng.below(mutated.len() as u64) as usize;
        let capture = &mut mutated[i];
        let at = rng.below(capture.bytes.len() as u64 + 1) as usize;
        match rng.below(6) {
            0 if at < capture.bytes.len() => capture.bytes[at] ^= 1 << rng.below(8),
            1 if at < capture.bytes.len() => capture.bytes[at] = rng.next() as u8,
            2 => {
                let end = (at + rng.below(64) as usize).min(capture.bytes.len());
                capture.bytes.drain(at..end);
            }
            3 => {
                let junk: Vec<u8> = (0..rng.below(32)).map(|_| rng.next() as u8).collect();
                capture.bytes.splice(at..at, junk);
            }
            4 => {
                // An interesting number where a length or size field may be.
                let value =
                    [0u8, 0x7f, 0x80, 0xff, b'0', b'\r', b'\n', 0xce][rng.below(8) as usize];
                if at < capture.bytes.len() {
                    capture.bytes[at] = value;
                }
            }
            _ => {
                let j = rng.below(mutated.len() as u64) as usize;
                mutated.swap(i, j);
                continue;
            }
        }
        let capture = &mut mutated[i];
        capture.len = capture.bytes.len() as u64 + rng.below(3) * rng.below(100_000);
    }
    mutated
}
