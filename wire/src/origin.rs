//! Where a message started, for the record's time, thread and Python stack.

use crate::stream::Segment;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Origin {
    pub time_ns: i64,
    pub tid: u32,
    pub python_stack_id: Option<u64>,
}

impl Origin {
    pub fn of(segment: &Segment<'_>) -> Self {
        Origin {
            time_ns: segment.time_ns,
            tid: segment.tid,
            python_stack_id: segment.python_stack_id,
        }
    }
}
