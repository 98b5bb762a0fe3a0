//! Python stacks taken for other tracers' events: the kernel sends a `SYSCALL` stack sample
//! with the event's thread and time; the python tracer files its stack id here under that key,
//! and the event's tracer picks it up for its `python_stack_id` column.

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use rustc_hash::FxHashMap;

/// (tid, kernel time ns) -> stack id. Cheap to clone: every tracer holds the same index.
#[derive(Clone, Default)]
pub struct StackIndex(Rc<RefCell<FxHashMap<(u32, u64), u64>>>);

impl StackIndex {
    pub fn insert(&self, tid: u32, time_ns: u64, stack_id: u64) {
        self.0.borrow_mut().insert((tid, time_ns), stack_id);
    }

    /// The stack id filed for an event, taken out of the index.
    pub fn take(&self, tid: u32, time_ns: u64) -> Option<u64> {
        self.0.borrow_mut().remove(&(tid, time_ns))
    }
}

/// Polls an event waits for its Python stack (the python tracer may read its ring buffer after
/// the event's tracer) before it is written without one: about a second.
const WAIT_POLLS: u32 = 20;

/// Events waiting for their Python stack before they are written.
pub struct AwaitingStacks<T> {
    index: StackIndex,
    waiting: Vec<Awaiting<T>>,
}

struct Awaiting<T> {
    event: T,
    /// (tid, kernel time) of the stack sample the kernel sent, if it sent one.
    key: Option<(u32, u64)>,
    polls: u32,
}

impl<T> AwaitingStacks<T> {
    pub fn new(index: &StackIndex) -> Self {
        Self {
            index: index.clone(),
            waiting: Vec::new(),
        }
    }

    /// Adds an event; `key` is `Some((tid, time_ns))` when the kernel took its stack.
    pub fn push(&mut self, event: T, key: Option<(u32, u64)>) {
        self.waiting.push(Awaiting {
            event,
            key,
            polls: 0,
        });
    }

    /// The events whose stack is known or will not come (every one when `all`), with their
    /// stack ids; the others wait for the next poll.
    pub fn ready(&mut self, all: bool) -> Vec<(T, Option<u64>)> {
        let mut ready = Vec::new();
        for mut awaiting in std::mem::take(&mut self.waiting) {
            let stack = awaiting
                .key
                .and_then(|(tid, time_ns)| self.index.take(tid, time_ns));
            if stack.is_some() || awaiting.key.is_none() || all || awaiting.polls >= WAIT_POLLS {
                ready.push((awaiting.event, stack));
            } else {
                awaiting.polls += 1;
                self.waiting.push(awaiting);
            }
        }
        ready
    }
}

/// Events that must stay in order (the segments of connections), each waiting for its Python
/// stack: the first one still waiting holds back those behind it.
pub struct InOrderStacks<T> {
    index: StackIndex,
    queue: VecDeque<Awaiting<T>>,
}

impl<T> InOrderStacks<T> {
    pub fn new(index: &StackIndex) -> Self {
        Self {
            index: index.clone(),
            queue: VecDeque::new(),
        }
    }

    /// Adds an event; `key` is `Some((tid, time_ns))` when the kernel took its stack.
    pub fn push(&mut self, event: T, key: Option<(u32, u64)>) {
        self.queue.push_back(Awaiting {
            event,
            key,
            polls: 0,
        });
    }

    /// The events, in order, up to the first whose stack is neither known nor given up on
    /// (none is held back when `all`), with their stack ids.
    pub fn ready(&mut self, all: bool) -> Vec<(T, Option<u64>)> {
        let mut ready = Vec::new();
        while let Some(front) = self.queue.front_mut() {
            let stack = front
                .key
                .and_then(|(tid, time_ns)| self.index.take(tid, time_ns));
            if stack.is_none() && front.key.is_some() && !all && front.polls < WAIT_POLLS {
                front.polls += 1;
                break;
            }
            let awaiting = self.queue.pop_front().expect("front exists");
            ready.push((awaiting.event, stack));
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_wait_for_their_stack_a_bounded_time() {
        let index = StackIndex::default();
        let mut awaiting = AwaitingStacks::new(&index);
        awaiting.push("no stack", None);
        awaiting.push("stack", Some((7, 100)));
        awaiting.push("lost", Some((7, 200)));
        assert_eq!(awaiting.ready(false), [("no stack", None)]);
        index.insert(7, 100, 42);
        assert_eq!(awaiting.ready(false), [("stack", Some(42))]);
        // "lost" has waited two polls already.
        for _ in 2..WAIT_POLLS {
            assert!(awaiting.ready(false).is_empty());
        }
        assert_eq!(awaiting.ready(false), [("lost", None)]);
    }

    #[test]
    fn in_order_events_wait_behind_the_first_without_its_stack() {
        let index = StackIndex::default();
        let mut in_order = InOrderStacks::new(&index);
        in_order.push("first", None);
        in_order.push("request", Some((7, 100)));
        in_order.push("response", None);
        assert_eq!(in_order.ready(false), [("first", None)]);
        assert!(in_order.ready(false).is_empty());
        index.insert(7, 100, 42);
        assert_eq!(
            in_order.ready(false),
            [("request", Some(42)), ("response", None)]
        );
        in_order.push("lost", Some((7, 200)));
        in_order.push("after", None);
        for _ in 0..WAIT_POLLS {
            assert!(in_order.ready(false).is_empty());
        }
        assert_eq!(in_order.ready(false), [("lost", None), ("after", None)]);
        in_order.push("at the end", Some((7, 300)));
        assert_eq!(in_order.ready(true), [("at the end", None)]);
    }
}
