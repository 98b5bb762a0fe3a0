//! Fixtures recorded from real servers (see fixtures/make_fixtures.py) and ways to replay
//! them: as recorded, chopped at other boundaries, with payload tails not captured.

#![allow(dead_code)]

use wire::stream::{ConnectionParser, Segment, Side};

pub struct Recorded {
    pub from: Side,
    pub time_ns: i64,
    pub bytes: Vec<u8>,
    /// What the syscall moved (`bytes` may be a prefix of it).
    pub len: u64,
}

pub const TID: u32 = 4242;

pub fn load(name: &str) -> Vec<Recorded> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let mut fields = line.split(' ');
            let from = match fields.next() {
                Some("C") => Side::Client,
                Some("S") => Side::Server,
                other => panic!("{path}: bad side {other:?}"),
            };
            let time_ns = fields.next().and_then(|t| t.parse().ok()).expect("time");
            let bytes = decode_hex(fields.next().expect("bytes"));
            let len = bytes.len() as u64;
            Recorded {
                from,
                time_ns,
                bytes,
                len,
            }
        })
        .collect()
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn run<P: ConnectionParser>(mut parser: P, segments: &[Recorded]) -> (Vec<P::Record>, P) {
    let mut out = Vec::new();
    let mut end = 0;
    for recorded in segments {
        end = recorded.time_ns;
        parser.feed(
            &Segment {
                time_ns: recorded.time_ns,
                tid: TID,
                from: recorded.from,
                bytes: &recorded.bytes,
                len: recorded.len,
                python_stack_id: Some(7),
            },
            &mut out,
        );
    }
    parser.close(end + 1, &mut out);
    (out, parser)
}

/// A small deterministic generator (xorshift64*), so the chopping tests are the same on every
/// run and need no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The same conversation with each direction's bytes cut at other places: consecutive
/// segments of one side are joined and re-split at random lengths (1 byte up to 2x the
/// original), keeping the order of the two sides. Each new segment carries the time of the
/// recorded segment its last byte came from, so latencies stay the same.
pub fn rechop(segments: &[Recorded], rng: &mut Rng) -> Vec<Recorded> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < segments.len() {
        let from = segments[i].from;
        let mut run: Vec<(u8, i64)> = Vec::new();
        while i < segments.len() && segments[i].from == from {
            run.extend(segments[i].bytes.iter().map(|&b| (b, segments[i].time_ns)));
            i += 1;
        }
        let mut at = 0;
        while at < run.len() {
            let take = match rng.below(4) {
                0 => 1 + rng.below(8) as usize,
                _ => 1 + rng.below(2 * 1460) as usize,
            }
            .min(run.len() - at);
            let piece = &run[at..at + take];
            out.push(Recorded {
                from,
                time_ns: piece[piece.len() - 1].1,
                bytes: piece.iter().map(|&(b, _)| b).collect(),
                len: take as u64,
            });
            at += take;
        }
    }
    out
}

/// What a test compares of a record: operation, statement (cut to 60 characters), rows,
/// error code.
pub type Summary = (&'static str, String, Option<u64>, Option<String>);

pub fn summary(record: &wire::records::SqlRecord) -> Summary {
    (
        record.operation,
        record.statement.chars().take(60).collect(),
        record.rows,
        record.error_code.clone(),
    )
}

pub fn summaries(records: &[wire::records::SqlRecord]) -> Vec<Summary> {
    records.iter().map(summary).collect()
}

/// Each fixture, rechopped 40 times from `seed`, gives the records it gives whole, all
/// complete and with nothing unparsed.
pub fn assert_same_records_however_cut<P>(new: fn() -> P, names: &[&str], seed: u64)
where
    P: ConnectionParser<Record = wire::records::SqlRecord>,
{
    for name in names {
        let segments = load(name);
        let whole = summaries(&run(new(), &segments).0);
        let mut rng = Rng::new(seed);
        for round in 0..40 {
            let (records, parser) = run(new(), &rechop(&segments, &mut rng));
            assert_eq!(summaries(&records), whole, "{name} round {round}");
            assert_eq!(parser.unparsed(), wire::stream::Unparsed::default());
            assert!(records.iter().all(|r| r.complete));
        }
    }
}

pub fn expect(rows: &[(&'static str, &str, Option<u64>, Option<&str>)]) -> Vec<Summary> {
    rows.iter()
        .map(|(op, statement, rows, code)| {
            let statement = statement.chars().take(60).collect();
            (*op, statement, *rows, code.map(str::to_string))
        })
        .collect()
}

/// Index of the first client segment whose bytes contain `needle`.
pub fn client_segment_with(segments: &[Recorded], needle: &[u8]) -> usize {
    segments
        .iter()
        .position(|s| s.from == Side::Client && s.bytes.windows(needle.len()).any(|w| w == needle))
        .expect("fixture holds the statement")
}

/// Keeps only the first `keep` bytes of that segment, as the kernel's capture prefix would.
pub fn capture_prefix(segments: &mut [Recorded], index: usize, keep: usize) {
    let segment = &mut segments[index];
    segment.bytes.truncate(keep);
}

/// The kernel copied only the first `keep` bytes of every segment of the response to the
/// client segment `request` but its last (the response must span two segments at least).
pub fn capture_prefix_of_response(segments: &mut [Recorded], request: usize, keep: usize) {
    let response: Vec<usize> = (request + 1..segments.len())
        .take_while(|&i| segments[i].from == Side::Server)
        .collect();
    assert!(response.len() >= 2, "the row spans segments");
    for &i in &response[..response.len() - 1] {
        capture_prefix(segments, i, keep);
    }
}

/// The fixture's bytes damaged at random: bits flipped, bytes dropped or inserted, tails
/// not captured; then chopped anew.
pub fn mutate(segments: &[Recorded], rng: &mut Rng) -> Vec<Recorded> {
    let mut damaged: Vec<Recorded> = segments
        .iter()
        .map(|s| Recorded {
            from: s.from,
            time_ns: s.time_ns,
            bytes: s.bytes.clone(),
            len: s.len,
        })
        .collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(damaged.len() as u64) as usize;
        let segment = &mut damaged[at];
        let pos = rng.below(segment.bytes.len() as u64 + 1) as usize;
        match rng.below(5) {
            0 if pos < segment.bytes.len() => segment.bytes[pos] ^= 1 << rng.below(8),
            1 if pos < segment.bytes.len() => segment.bytes[pos] = rng.next() as u8,
            2 if pos < segment.bytes.len() => {
                segment.bytes.remove(pos);
            }
            3 => segment.bytes.insert(pos, rng.next() as u8),
            _ => segment.bytes.truncate(pos),
        }
        segment.len = segment.len.max(segment.bytes.len() as u64);
    }
    let mut chopped = rechop(&damaged, rng);
    // Re-chopping spreads the capture prefix over new segments: put the missing bytes back
    // at random places so `len > bytes.len()` is exercised after chopping too.
    let missing: u64 = damaged.iter().map(|s| s.len - s.bytes.len() as u64).sum();
    if missing > 0 && !chopped.is_empty() {
        let at = rng.below(chopped.len() as u64) as usize;
        chopped[at].len += missing;
    }
    chopped
}

/// What a test compares of a cache record: command, key, keys, hits, bytes, error.
pub type CacheSummary = (
    String,
    Option<String>,
    u32,
    Option<u32>,
    u64,
    Option<String>,
);

pub fn cache_summaries(records: &[wire::records::CacheRecord]) -> Vec<CacheSummary> {
    records
        .iter()
        .map(|r| {
            (
                r.command.clone(),
                r.key.clone(),
                r.keys,
                r.hits,
                r.bytes,
                r.error.clone(),
            )
        })
        .collect()
}

pub type CacheRow<'a> = (
    &'a str,
    Option<&'a str>,
    u32,
    Option<u32>,
    u64,
    Option<&'a str>,
);

pub fn expect_cache(rows: &[CacheRow<'_>]) -> Vec<CacheSummary> {
    rows.iter()
        .map(|&(command, key, keys, hits, bytes, error)| {
            (
                command.to_string(),
                key.map(str::to_string),
                keys,
                hits,
                bytes,
                error.map(str::to_string),
            )
        })
        .collect()
}

/// Each cache fixture, rechopped 40 times from `seed`, gives the records it gives whole, all
/// complete, and leaves as much unparsed.
pub fn assert_same_cache_records_however_cut<P>(new: fn() -> P, names: &[&str], seed: u64)
where
    P: ConnectionParser<Record = wire::records::CacheRecord>,
{
    for name in names {
        let segments = load(name);
        let (records, parser) = run(new(), &segments);
        let (whole, unparsed) = (cache_summaries(&records), parser.unparsed());
        let mut rng = Rng::new(seed);
        for round in 0..40 {
            let (records, parser) = run(new(), &rechop(&segments, &mut rng));
            assert_eq!(cache_summaries(&records), whole, "{name} round {round}");
            assert_eq!(parser.unparsed(), unparsed, "{name} round {round}");
            assert!(records.iter().all(|r| r.complete), "{name} round {round}");
        }
    }
}
