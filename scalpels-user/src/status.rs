//! The one-line live status on stderr, redrawn in place; silent when stderr is not a terminal.

use std::io::{IsTerminal as _, Write as _};

pub struct StatusLine {
    enabled: bool,
    drawn: bool,
}

impl StatusLine {
    pub fn new() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    pub fn show(&mut self, line: &str) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
            self.drawn = true;
        }
    }

    /// Erases the line so later output starts on a clean line.
    pub fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.drawn = false;
        }
    }
}
