//! The records of the protocols ring buffer, decoded.

use tracers::protocols::{CloseEvent, ConnEvent, DataHeader, ExitEvent, kind};

pub enum Event {
    Conn(ConnEvent),
    Data {
        header: DataHeader,
        /// The copied prefix of the payload (`header.captured` bytes).
        payload: Vec<u8>,
    },
    Close(CloseEvent),
    Exit(ExitEvent),
}

/// A `T` at the start of `bytes`, if there is room for one.
fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: T is a #[repr(C)] record of plain integers the kernel wrote in full.
        .then(|| unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

impl Event {
    /// Decodes one ring-buffer record; `None` for a record of unknown kind or cut short.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let record_kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        match record_kind {
            kind::CONN => read(bytes).map(Event::Conn),
            kind::DATA => {
                let header: DataHeader = read(bytes)?;
                let start = size_of::<DataHeader>();
                let payload = bytes.get(start..start + header.captured as usize)?;
                Some(Event::Data {
                    header,
                    payload: payload.to_vec(),
                })
            }
            kind::CLOSE => read(bytes).map(Event::Close),
            kind::EXIT => read(bytes).map(Event::Exit),
            _ => None,
        }
    }

    /// The (tid, kernel time) of the Python stack the kernel took for this event, if it did.
    pub fn stack_key(&self) -> Option<(u32, u64)> {
        match self {
            Event::Data { header, .. } if header.python_stack != 0 => {
                Some((header.tid, header.end_ns))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_record_keeps_only_its_captured_bytes() {
        let header = DataHeader {
            kind: kind::DATA,
            len: 10,
            captured: 3,
            ..DataHeader::default()
        };
        let mut record = Vec::new();
        // SAFETY: a plain #[repr(C)] record viewed as bytes.
        record.extend_from_slice(unsafe {
            std::slice::from_raw_parts((&raw const header).cast::<u8>(), size_of::<DataHeader>())
        });
        record.extend_from_slice(b"abc\0\0");
        let Some(Event::Data { header, payload }) = Event::decode(&record) else {
            panic!("not decoded as data");
        };
        assert_eq!((header.len, payload.as_slice()), (10, &b"abc"[..]));
        assert!(Event::decode(&record[..size_of::<DataHeader>() + 2]).is_none());
    }
}
