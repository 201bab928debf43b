//! Replies remembered by command id, so a repeated command (a dashboard
//! retrying after a lost reply) gets the first reply and runs only once.

use std::collections::{HashMap, VecDeque};

pub struct Replies {
    cap: usize,
    order: VecDeque<String>,
    by_id: HashMap<String, Vec<u8>>,
}

impl Replies {
    pub fn new(cap: usize) -> Replies {
        Replies { cap, order: VecDeque::new(), by_id: HashMap::new() }
    }

    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.by_id.get(id).map(Vec::as_slice)
    }

    /// Remembers the reply to `id`, forgetting the oldest beyond the cap.
    pub fn insert(&mut self, id: &str, reply: Vec<u8>) {
        if self.by_id.insert(id.to_string(), reply).is_none() {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_first_reply_and_forgets_the_oldest() {
        let mut r = Replies::new(2);
        r.insert("a", b"1".to_vec());
        r.insert("b", b"2".to_vec());
        assert_eq!(r.get("a"), Some(&b"1"[..]));
        r.insert("c", b"3".to_vec());
        assert_eq!(r.get("a"), None);
        assert_eq!(r.get("b"), Some(&b"2"[..]));
        assert_eq!(r.get("c"), Some(&b"3"[..]));
    }
}
