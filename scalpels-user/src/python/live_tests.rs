//! The layout tables checked against live interpreters: from `_PyRuntime`, walk to every
//! thread and through the main thread's frames the way the stack sampler does, and symbolize
//! what was found.

use std::{collections::BTreeSet, thread, time::Duration};

use super::{
    code::Symbolizer,
    memory::ProcessMemory,
    test_pythons::{self, Running},
    versions::{self, FrameOwner, Instr, Layout},
};

/// The main thread sleeps in `sleeper` (line 13) called from the module (line 16) while a
/// second thread sleeps in `other`.
const SLEEP_IN_TWO_THREADS: &str = r#"import ctypes, json, sys, threading, time


def other():
    time.sleep(600)


def sleeper():
    worker = threading.Thread(target=other, daemon=True)
    worker.start()
    runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    print(json.dumps({"runtime": runtime, "main": threading.get_ident(), "native": threading.get_native_id(), "worker": worker.ident, "code": id(sleeper.__code__), "module": id(sys._getframe(1).f_code)}), flush=True)
    time.sleep(600)


sleeper()
"#;
const SLEEP_LINE: u32 = 13;
const CALL_LINE: u32 = 16;

#[derive(serde::Deserialize)]
struct Printed {
    runtime: u64,
    main: u64,
    native: u64,
    worker: u64,
    code: u64,
    module: u64,
}

struct Thread {
    tstate: u64,
    thread_id: u64,
    native_thread_id: Option<u64>,
}

fn threads(mem: &ProcessMemory, layout: &Layout, runtime: u64) -> Vec<Thread> {
    let field = |base: u64, offset: u32| mem.read_u64(base + u64::from(offset)).unwrap();
    let interp = field(runtime, layout.runtime_interpreters_head);
    let mut tstate = field(interp, layout.interp_threads_head);
    let mut threads = Vec::new();
    while tstate != 0 && threads.len() < 16 {
        threads.push(Thread {
            tstate,
            thread_id: field(tstate, layout.tstate_thread_id),
            native_thread_id: layout.tstate_native_thread_id.map(|o| field(tstate, o)),
        });
        tstate = field(tstate, layout.tstate_next);
    }
    threads
}

/// Whether the frame is a C-stack shim (3.12+): the C function that entered the interpreter,
/// not Python code.
fn is_shim(mem: &ProcessMemory, layout: &Layout, frame: u64) -> bool {
    match layout.frame_owner {
        Some(FrameOwner::OwnerByte { offset, c_stack }) => {
            mem.read_u8(frame + u64::from(offset)).unwrap() == c_stack
        }
        _ => false,
    }
}

/// Addresses of the thread's Python frames, innermost first (shims left out).
fn frame_addresses(mem: &ProcessMemory, layout: &Layout, tstate: u64) -> Vec<u64> {
    let field = |base: u64, offset: u32| mem.read_u64(base + u64::from(offset)).unwrap();
    let mut frame = field(tstate, layout.tstate_frame);
    if let Some(current_frame) = layout.cframe_current_frame {
        frame = field(frame, current_frame);
    }
    let mut addresses = Vec::new();
    while frame != 0 && addresses.len() < 64 {
        if !is_shim(mem, layout, frame) {
            addresses.push(frame);
        }
        frame = field(frame, layout.frame_previous);
    }
    addresses
}

/// (code object, raw instruction) of each Python frame, innermost first.
fn frames(mem: &ProcessMemory, layout: &Layout, tstate: u64) -> Vec<(u64, u64)> {
    let field = |base: u64, offset: u32| mem.read_u64(base + u64::from(offset)).unwrap();
    frame_addresses(mem, layout, tstate)
        .into_iter()
        .map(|frame| {
            let instr = match layout.instr {
                Instr::Pointer => field(frame, layout.frame_instr),
                Instr::LastiBytes | Instr::LastiCodeUnits => {
                    mem.read_i32(frame + u64::from(layout.frame_instr)).unwrap() as i64 as u64
                }
            };
            (field(frame, layout.frame_code), instr)
        })
        .collect()
}

/// From 3.11, the frames of a thread that runs no generator lie in its newest data-stack
/// chunk, each caller below its callee: what the kernel's walk reads windows of.
fn assert_frames_in_data_stack(mem: &ProcessMemory, layout: &Layout, tstate: u64, which: &str) {
    let Some(datastack) = layout.datastack else {
        return;
    };
    let field = |base: u64, offset: u32| mem.read_u64(base + u64::from(offset)).unwrap();
    let chunk = field(tstate, datastack.tstate_chunk);
    assert_ne!(chunk, 0, "{which}: no data-stack chunk");
    let data = chunk + u64::from(datastack.chunk_data);
    let end = chunk + field(chunk, datastack.chunk_size);
    assert!(
        end - data < 1 << 30,
        "{which}: chunk of {} bytes",
        end - data
    );
    let addresses = frame_addresses(mem, layout, tstate);
    assert!(!addresses.is_empty(), "{which}");
    for pair in addresses.windows(2) {
        assert!(pair[1] < pair[0], "{which}: caller above callee: {pair:x?}");
    }
    for address in addresses {
        assert!(
            (data..end).contains(&address),
            "{which}: frame {address:#x} outside the chunk {data:#x}..{end:#x}"
        );
    }
}

/// glibc 2.36 x86_64: `struct pthread` (whose address is the `pthread_t`) keeps the values of
/// keys below 32 in `specific_1stblock` at 784, 16 bytes each, the value 8 bytes in.
fn tss_value(mem: &ProcessMemory, pthread: u64, key: u32) -> Option<u64> {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    (glibc.to_bytes() == b"2.36" && key < 32).then(|| {
        mem.read_u64(pthread + 784 + 16 * u64::from(key) + 8)
            .unwrap()
    })
}

#[test]
fn python_layouts_walk_live_interpreters() {
    let script = test_pythons::script("two-threads", SLEEP_IN_TWO_THREADS);
    for python in test_pythons::installed() {
        let which = python.path.display().to_string();
        let (major, minor) = python.version;
        let layout = versions::layout(major, minor).unwrap();
        let running = Running::start(&python, &script);
        let printed: Printed = serde_json::from_str(&running.first_line).unwrap();
        let mem = ProcessMemory::new(running.pid());

        if minor >= 13 {
            let mut prefix = vec![0; versions::DEBUG_OFFSETS_LEN];
            mem.read(printed.runtime, &mut prefix).unwrap();
            assert_eq!(
                versions::from_debug_offsets(&prefix).unwrap(),
                layout,
                "{which}"
            );
        }

        let threads = threads(&mem, &layout, printed.runtime);
        let ids: BTreeSet<u64> = threads.iter().map(|t| t.thread_id).collect();
        assert_eq!(
            ids,
            BTreeSet::from([printed.main, printed.worker]),
            "{which}"
        );
        let main = threads
            .iter()
            .find(|t| t.thread_id == printed.main)
            .unwrap();
        if minor >= 11 {
            assert_eq!(main.native_thread_id, Some(printed.native), "{which}");
        }

        let tss = printed.runtime + u64::from(layout.tss_key);
        assert_eq!(
            mem.read_i32(tss - 4).unwrap(),
            1,
            "{which}: Py_tss_t._is_initialized"
        );
        let key = mem.read_u32(tss).unwrap();
        for thread in &threads {
            if let Some(tstate) = tss_value(&mem, thread.thread_id, key) {
                assert_eq!(tstate, thread.tstate, "{which}: TSS key {key}");
            }
        }

        // The main thread may still be between the print and the sleep: give it time.
        let mut symbolizer = Symbolizer::default();
        let mut top = None;
        for _ in 0..50 {
            let frames = frames(&mem, &layout, main.tstate);
            let codes: Vec<u64> = frames.iter().map(|&(code, _)| code).collect();
            assert_eq!(codes, [printed.code, printed.module], "{which}");
            let sym: Vec<_> = frames
                .iter()
                .map(|&(code, instr)| symbolizer.frame(running.pid(), &layout, code, instr))
                .collect();
            assert_eq!(sym[1].function, "<module>", "{which}");
            assert_eq!(sym[1].line, Some(CALL_LINE), "{which}");
            if sym[0].line == Some(SLEEP_LINE) {
                top = Some(sym.into_iter().next().unwrap());
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let top = top.unwrap_or_else(|| panic!("{which}: sleeper never reached its sleep"));
        assert_frames_in_data_stack(&mem, &layout, main.tstate, &which);
        assert_eq!(top.function, "sleeper", "{which}");
        assert_eq!(top.file, script.to_str().unwrap(), "{which}");
    }
    std::fs::remove_file(script).unwrap();
}
