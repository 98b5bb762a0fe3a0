//! The stacks the kernel sends once per key (`PyStackHeader` and its frames) and the samples
//! that name them by key (`PySample`): frames are named once per stack, stacks are identified
//! by what they name, and samples wait a little for a stack sent by another CPU.

use rustc_hash::FxHashMap;
use tracers::python::{
    KEPT_FRAMES, KEPT_INNER, KEPT_OUTER, PyFrame, PySample, PyStackHeader, kept_slot,
};

use super::code::{Frame, Symbolizer};
use super::versions::Layout;

/// The frame standing for the frames cut out of a deep stack (or, outermost, for those past
/// `--python-depth`).
pub const TRUNCATED_FUNCTION: &str = "[truncated]";

/// Polls a sample waits for its stack before it is counted as lost (about a second).
const WAIT_POLLS: u32 = 20;

/// A stack the kernel sent, as the loader named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownStack {
    /// The stack's identity: a hash of its named frames, the same in every run.
    pub id: u64,
    /// Frames were cut out (the middle, or past `--python-depth`).
    pub truncated: bool,
    /// The generation of kernel keys it was sent in.
    generation: u64,
}

/// Kernel stack keys and what they name.
#[derive(Default)]
pub struct Stacks {
    known: FxHashMap<u64, KnownStack>,
    generation: u64,
    /// Samples whose stack has not arrived yet, with the polls they waited.
    waiting: Vec<(PySample, u32)>,
    /// Samples whose stack never came.
    pub lost: u64,
}

impl Stacks {
    /// Files the stack of `header`, whose `frames` (in the kernel's kept order) are named by
    /// `name`; the named frames when the id is new to `seen`.
    pub fn add(
        &mut self,
        header: &PyStackHeader,
        frames: &[PyFrame],
        mut name: impl FnMut(&PyFrame) -> Frame,
    ) -> (KnownStack, Vec<Frame>) {
        let ordered = unrotate(header.walked, frames);
        let mut named: Vec<Frame> = Vec::with_capacity(ordered.len() + 2);
        for (level, frame) in ordered.iter().enumerate() {
            if level == KEPT_INNER && header.walked as usize > KEPT_FRAMES {
                named.push(truncated());
            }
            named.push(name(frame));
        }
        if header.root_lost != 0 {
            named.push(truncated());
        }
        let known = KnownStack {
            id: stack_id(&named),
            truncated: header.root_lost != 0 || header.walked as usize > KEPT_FRAMES,
            generation: self.generation,
        };
        self.known.insert(header.key, known);
        (known, named)
    }

    /// The stack of `sample`, or `None` while it has not arrived (the sample then waits).
    pub fn resolve(&mut self, sample: PySample) -> Option<(PySample, KnownStack)> {
        match self.known.get(&sample.key) {
            Some(&known) => Some((sample, known)),
            None => {
                self.waiting.push((sample, 0));
                None
            }
        }
    }

    /// The waiting samples whose stack arrived since; those that waited too long are lost.
    pub fn arrived(&mut self, give_up: bool) -> Vec<(PySample, KnownStack)> {
        let mut ready = Vec::new();
        for (sample, polls) in std::mem::take(&mut self.waiting) {
            match self.known.get(&sample.key) {
                Some(&known) => ready.push((sample, known)),
                None if give_up || polls >= WAIT_POLLS => self.lost += 1,
                None => self.waiting.push((sample, polls + 1)),
            }
        }
        ready
    }

    /// Starts a new generation of kernel keys; stacks of the one before stay known for the
    /// samples still on their way.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        let keep_from = self.generation - 1;
        self.known.retain(|_, known| known.generation >= keep_from);
        self.generation
    }
}

fn truncated() -> Frame {
    Frame {
        function: TRUNCATED_FUNCTION.to_owned(),
        file: String::new(),
        line: None,
    }
}

/// The kept frames innermost first: past [`KEPT_FRAMES`], the outermost ones sit in a ring
/// (see `tracers::python::kept_slot`) that starts where the oldest of them was written.
fn unrotate(walked: u32, frames: &[PyFrame]) -> Vec<PyFrame> {
    if walked as usize <= KEPT_FRAMES || frames.len() < KEPT_FRAMES {
        return frames.to_vec();
    }
    let mut ordered = frames[..KEPT_INNER].to_vec();
    ordered.extend((walked - KEPT_OUTER as u32..walked).map(|n| frames[kept_slot(n)]));
    ordered
}

/// A stack's identity: a hash of its frames, the same in every run for the same code lines.
pub fn stack_id(frames: &[Frame]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    for frame in frames {
        frame.function.hash(&mut hasher);
        frame.file.hash(&mut hasher);
        frame.line.hash(&mut hasher);
    }
    hasher.finish()
}

/// Names the frames of a stack record of process `pid`.
pub fn namer<'a>(
    symbolizer: &'a mut Symbolizer,
    pid: u32,
    layout: &'a Layout,
) -> impl FnMut(&PyFrame) -> Frame + 'a {
    move |frame| symbolizer.frame(pid, layout, frame.code, frame.instr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u32) -> PyFrame {
        PyFrame {
            code: u64::from(n),
            instr: 0,
        }
    }

    fn named(frame: &PyFrame) -> Frame {
        Frame {
            function: format!("f{}", frame.code),
            file: "x.py".into(),
            line: Some(1),
        }
    }

    /// The kernel's slots for a walk of `walked` frames numbered 0 (innermost) up.
    fn kernel_record(walked: u32) -> Vec<PyFrame> {
        let mut slots = vec![PyFrame::default(); (walked as usize).min(KEPT_FRAMES)];
        for n in 0..walked {
            slots[kept_slot(n)] = frame(n);
        }
        slots
    }

    fn header(key: u64, walked: u32, root_lost: bool) -> PyStackHeader {
        PyStackHeader {
            record: tracers::python::record::STACK,
            tgid: 1,
            key,
            walked,
            root_lost: u32::from(root_lost),
        }
    }

    #[test]
    fn python_deep_stacks_keep_innermost_and_outermost_frames_around_one_cut() {
        let mut stacks = Stacks::default();
        let walked = 300;
        let (known, frames) = stacks.add(&header(7, walked, false), &kernel_record(walked), named);
        assert!(known.truncated);
        assert_eq!(frames.len(), KEPT_FRAMES + 1);
        assert_eq!(frames[0].function, "f0");
        assert_eq!(frames[KEPT_INNER - 1].function, "f191");
        assert_eq!(frames[KEPT_INNER].function, TRUNCATED_FUNCTION);
        assert_eq!(frames[KEPT_INNER + 1].function, "f236");
        assert_eq!(frames.last().unwrap().function, "f299", "the root is kept");
    }

    #[test]
    fn python_stacks_that_fit_are_whole_and_a_lost_root_is_marked_outermost() {
        let mut stacks = Stacks::default();
        let (known, frames) = stacks.add(&header(1, 82, false), &kernel_record(82), named);
        assert!(!known.truncated);
        let functions: Vec<String> = frames.iter().map(|f| f.function.clone()).collect();
        let expected: Vec<String> = (0..82).map(|n| format!("f{n}")).collect();
        assert_eq!(functions, expected);
        let (known, frames) = stacks.add(&header(2, 20, true), &kernel_record(20), named);
        assert!(known.truncated);
        assert_eq!(frames.len(), 21);
        assert_eq!(frames[20].function, TRUNCATED_FUNCTION);
    }

    #[test]
    fn python_samples_wait_for_their_stack_then_count_as_lost() {
        let mut stacks = Stacks::default();
        let sample = |key| PySample {
            key,
            ..PySample::default()
        };
        assert_eq!(stacks.resolve(sample(5)), None);
        assert_eq!(stacks.resolve(sample(6)), None);
        let (known, _) = stacks.add(&header(5, 3, false), &kernel_record(3), named);
        assert_eq!(stacks.arrived(false), [(sample(5), known)]);
        // Sample 6 has waited one poll already.
        for _ in 1..WAIT_POLLS {
            assert!(stacks.arrived(false).is_empty());
        }
        assert_eq!(stacks.lost, 0);
        assert!(stacks.arrived(false).is_empty());
        assert_eq!(stacks.lost, 1);
        // Stacks of the generation before stay known; older ones are forgotten.
        stacks.next_generation();
        assert!(stacks.resolve(sample(5)).is_some());
        stacks.next_generation();
        assert_eq!(stacks.resolve(sample(5)), None);
    }
}
