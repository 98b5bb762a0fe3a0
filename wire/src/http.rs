//! HTTP/1.0 and 1.1 on one connection, from either end: requests and responses framed per
//! RFC 9112 (Content-Length, chunked, read until close, no body for HEAD, 1xx, 204, 304),
//! responses paired with requests in order (keep-alive and pipelining). Latency runs from
//! the request's first byte to the response's last byte. `Connection` does not change how a
//! message is delimited, so it is not needed here.

mod route;

use std::collections::VecDeque;

use crate::http_message::{Framing, Half, Head, Role, StartLine, Step};
use crate::origin::Origin;
use crate::records::HttpRecord;
use crate::stream::{ConnectionParser, Segment, Side, Unparsed};

pub use route::route;

/// Requests waiting for a response, at most (pipelining depth is a few in practice).
const MAX_PENDING: usize = 1024;

pub struct HttpParser {
    requests: Half,
    responses: Half,
    /// Requests whose response has not ended, oldest first.
    pending: VecDeque<Pending>,
    /// A request whose body is still arriving (its sequence number).
    request_in_progress: Option<u64>,
    /// The response being read, if it answers `pending.front()` (false for a response to a
    /// request that was never seen).
    response_in_progress: Option<ResponseState>,
    next_seq: u64,
    unparsed: Unparsed,
}

struct Pending {
    seq: u64,
    origin: Origin,
    method: String,
    path: String,
    host: Option<String>,
    request_bytes: u64,
}

struct ResponseState {
    status: u16,
    paired: bool,
    last_ns: i64,
}

impl Default for HttpParser {
    fn default() -> Self {
        Self {
            requests: Half::new(Role::Request),
            responses: Half::new(Role::Response),
            pending: VecDeque::new(),
            request_in_progress: None,
            response_in_progress: None,
            next_seq: 0,
            unparsed: Unparsed::default(),
        }
    }
}

impl HttpParser {
    pub fn new() -> Self {
        Self::default()
    }

    fn on_request(&mut self, step: Step, out: &mut Vec<HttpRecord>) {
        match step {
            Step::Head(head, origin) => {
                let Head {
                    start: StartLine::Request { method, target },
                    ..
                } = &head
                else {
                    return;
                };
                let framing = if head.chunked {
                    Framing::Chunked
                } else {
                    Framing::Length(head.content_length.unwrap_or(0))
                };
                if self.pending.len() >= MAX_PENDING {
                    // No response for this many requests: the responses are not HTTP we can
                    // follow. The oldest goes out unanswered rather than memory growing.
                    let oldest = self.pending.pop_front().expect("pending");
                    self.unparsed.messages += 1;
                    let bytes = oldest.request_bytes;
                    out.push(record(oldest, None, 0, None, bytes));
                }
                let seq = self.next_seq;
                self.next_seq += 1;
                self.pending.push_back(Pending {
                    seq,
                    origin,
                    method: method.clone(),
                    path: target.clone(),
                    host: head.host,
                    request_bytes: 0,
                });
                self.requests.set_framing(framing);
                self.request_in_progress = (!self.requests.bodyless()).then_some(seq);
            }
            Step::End(bytes) => self.request_ended(bytes),
            Step::Lost => {
                let bytes = self.requests.body_bytes();
                self.request_ended(bytes);
            }
            Step::Wait => {}
        }
    }

    fn request_ended(&mut self, bytes: u64) {
        if let Some(seq) = self.request_in_progress.take()
            && let Some(request) = self.pending.iter_mut().find(|p| p.seq == seq)
        {
            request.request_bytes = bytes;
        }
    }

    fn on_response(&mut self, step: Step, time_ns: i64, out: &mut Vec<HttpRecord>) {
        match step {
            Step::Head(head, _) => {
                let StartLine::Response { status } = head.start else {
                    return;
                };
                let request_method = self.pending.front().map(|p| p.method.as_str());
                let framing = if status == 101
                    || (request_method == Some("CONNECT") && (200..300).contains(&status))
                {
                    Framing::Tunnel
                } else if (100..200).contains(&status) {
                    // Interim: the final response to the same request follows.
                    return;
                } else if request_method == Some("HEAD") || status == 204 || status == 304 {
                    Framing::None
                } else if head.chunked {
                    Framing::Chunked
                } else if head.other_encoding {
                    Framing::UntilClose
                } else if let Some(length) = head.content_length {
                    Framing::Length(length)
                } else {
                    Framing::UntilClose
                };
                let paired = !self.pending.is_empty();
                if !paired {
                    self.unparsed.messages += 1;
                }
                self.response_in_progress = Some(ResponseState {
                    status,
                    paired,
                    last_ns: time_ns,
                });
                self.responses.set_framing(framing);
                if framing == Framing::Tunnel {
                    self.requests.set_framing(Framing::Tunnel);
                    self.response_ended(0, time_ns, true, out);
                } else if self.responses.bodyless() {
                    self.response_ended(0, time_ns, true, out);
                }
            }
            Step::End(bytes) => self.response_ended(bytes, time_ns, true, out),
            Step::Lost => {
                if self.response_in_progress.is_some() {
                    let bytes = self.responses.body_bytes();
                    self.response_ended(bytes, time_ns, false, out);
                } else if let Some(request) = self.pending.pop_front() {
                    // The lost bytes held (at least) the head of this request's response.
                    self.request_in_progress =
                        self.request_in_progress.filter(|&seq| seq != request.seq);
                    let bytes = request.request_bytes;
                    out.push(record(request, None, 0, None, bytes));
                }
            }
            Step::Wait => {
                if let Some(response) = &mut self.response_in_progress {
                    response.last_ns = time_ns;
                }
            }
        }
    }

    /// The response being read ended (`complete`: at a byte we saw, so its time is right).
    fn response_ended(
        &mut self,
        bytes: u64,
        time_ns: i64,
        complete: bool,
        out: &mut Vec<HttpRecord>,
    ) {
        let Some(response) = self.response_in_progress.take() else {
            return;
        };
        if !response.paired {
            return;
        }
        let Some(request) = self.pending.pop_front() else {
            return;
        };
        let request_bytes = if self.request_in_progress == Some(request.seq) {
            // Answered before its body was all sent (an early error, 100-continue refused).
            self.request_in_progress = None;
            self.requests.body_bytes()
        } else {
            request.request_bytes
        };
        out.push(record(
            request,
            Some(response.status),
            bytes,
            complete.then_some(time_ns),
            request_bytes,
        ));
    }
}

fn record(
    request: Pending,
    status: Option<u16>,
    response_bytes: u64,
    end_ns: Option<i64>,
    request_bytes: u64,
) -> HttpRecord {
    HttpRecord {
        time_ns: request.origin.time_ns,
        tid: request.origin.tid,
        method: request.method,
        path: request.path,
        host: request.host,
        status,
        request_bytes,
        response_bytes,
        latency_ns: end_ns.map(|end| end.saturating_sub(request.origin.time_ns).max(0) as u64),
        python_stack_id: request.origin.python_stack_id,
    }
}

impl ConnectionParser for HttpParser {
    type Record = HttpRecord;

    fn feed(&mut self, segment: &Segment<'_>, out: &mut Vec<HttpRecord>) {
        let origin = Origin::of(segment);
        match segment.from {
            Side::Client => {
                self.requests.push(segment.bytes, origin);
                loop {
                    match self.requests.step() {
                        Step::Wait => break,
                        step => self.on_request(step, out),
                    }
                }
                for step in self.requests.hole(segment.missing()) {
                    self.on_request(step, out);
                }
            }
            Side::Server => {
                self.responses.push(segment.bytes, origin);
                loop {
                    match self.responses.step() {
                        Step::Wait => break,
                        step => self.on_response(step, segment.time_ns, out),
                    }
                }
                self.on_response(Step::Wait, segment.time_ns, out);
                for step in self.responses.hole(segment.missing()) {
                    self.on_response(step, segment.time_ns, out);
                }
            }
        }
    }

    fn close(&mut self, _time_ns: i64, out: &mut Vec<HttpRecord>) {
        if let Some(response) = self.response_in_progress.take()
            && response.paired
            && let Some(request) = self.pending.pop_front()
        {
            // Read-until-close ends here, at the last byte seen; any other body was cut.
            let end = self.responses.until_close().then_some(response.last_ns);
            let bytes = request.request_bytes;
            let response_bytes = self.responses.body_bytes();
            out.push(record(
                request,
                Some(response.status),
                response_bytes,
                end,
                bytes,
            ));
        }
        for request in self.pending.drain(..) {
            let bytes = request.request_bytes;
            out.push(record(request, None, 0, None, bytes));
        }
    }

    fn unparsed(&self) -> Unparsed {
        Unparsed {
            messages: self.unparsed.messages,
            bytes: self.unparsed.bytes + self.requests.skipped_bytes + self.responses.skipped_bytes,
        }
    }
}

#[cfg(test)]
mod tests;
