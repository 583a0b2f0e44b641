//! The message log: the newest lines only, so a page left open for days stays small.

use std::collections::VecDeque;

/// How many lines the page keeps.
pub const LOG_CAPACITY: usize = 500;

/// One line of the log, with a key that stays unique as old lines fall off the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Increases by one per line ever pushed; the list view's key.
    pub id: u64,
    pub text: String,
}

/// The newest `capacity` lines, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBuffer {
    lines: VecDeque<LogLine>,
    capacity: usize,
    next_id: u64,
}

impl LogBuffer {
    /// An empty log holding at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        Self { lines: VecDeque::with_capacity(capacity.min(64)), capacity, next_id: 0 }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&mut self, text: impl Into<String>) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(LogLine { id: self.next_id, text: text.into() });
        self.next_id += 1;
    }

    /// Removes every line (ids keep increasing, so views never reuse a key).
    pub fn clear(&mut self) {
        self.lines.clear();
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &LogLine> {
        self.lines.iter()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new(LOG_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_newest_lines() {
        let mut log = LogBuffer::new(3);
        for i in 0..10 {
            log.push(format!("line {i}"));
        }
        let texts: Vec<&str> = log.lines().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["line 7", "line 8", "line 9"]);
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn a_day_of_ticks_stays_at_the_cap() {
        let mut log = LogBuffer::default();
        for i in 0..86_400 {
            log.push(format!("tick {i}"));
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log.lines().last().unwrap().text, "tick 86399");
    }

    #[test]
    fn ids_stay_unique_across_clears() {
        let mut log = LogBuffer::new(2);
        log.push("a");
        log.clear();
        assert!(log.is_empty());
        log.push("b");
        assert_eq!(log.lines().next().unwrap().id, 1);
    }
}
